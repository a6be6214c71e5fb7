"""What a verification reports about the attestations of one published digest.

Every digest of a release (each index, each platform manifest) must carry one attestation of
each predicate type in ``PREDICATE_TYPES``, stored as attesting that digest, whose statement is
about that digest, signed so that the given verifier accepts it.
"""

from __future__ import annotations

from pipeline.attest.errors import AttestationError
from pipeline.attest.signing import Verifier, unverified_statement
from pipeline.attest.statements import PREDICATE_TYPES, Statement
from pipeline.attest.storage import StoredBundle, attached
from pipeline.oci import RegistryClient, RegistryError
from pipeline.oci.text import printable


async def check_attestations(
    client: RegistryClient,
    repository: str,
    subject_digest: str,
    verifier: Verifier | None,
    *,
    subject_name: str | None = None,
) -> list[str]:
    """One line per problem, each naming ``registry/repository@digest`` and the predicate type.

    Problems: a predicate type missing; an artifact stored as attesting another digest; a
    statement about another digest, of another predicate type or (with ``subject_name``, the
    repository without tag) naming another repository; a signature ``verifier`` refuses; a
    bundle of a predicate type the release does not make; a listing the registry cannot serve
    (a listed artifact it does not hold, a bundle too large to read). Without a verifier,
    signatures are not checked (the statements are still read). [] when all is well.
    """
    where = f"{client.registry}/{repository}@{subject_digest}"
    try:
        stored = await attached(client, repository, subject_digest)
    except (AttestationError, RegistryError) as exc:
        return [f"{where}: attestations cannot be read: {exc}"]
    problems = []
    for predicate_type in PREDICATE_TYPES:
        found = [bundle for bundle in stored if bundle.predicate_type == predicate_type]
        if not found:
            problems.append(f"{where}: {predicate_type} attestation missing")
        for bundle in found:
            problems.extend(
                _problems(bundle, where, subject_digest, predicate_type, verifier, subject_name)
            )
    problems += [
        f"{where}: attestation {bundle.manifest_digest} has predicate type "
        f"{printable(bundle.predicate_type)[:80]!r}, which the release does not make; "
        f"accepted: {', '.join(PREDICATE_TYPES)}"
        for bundle in stored
        if bundle.predicate_type not in PREDICATE_TYPES
    ]
    return problems


def _problems(
    stored: StoredBundle,
    where: str,
    subject_digest: str,
    predicate_type: str,
    verifier: Verifier | None,
    subject_name: str | None,
) -> list[str]:
    """What is wrong with one stored attestation of ``predicate_type``."""
    label = f"{where}: {predicate_type} attestation {stored.manifest_digest}"
    problems = []
    if stored.subject_digest != subject_digest:
        problems.append(f"{label} is stored as attesting {stored.subject_digest}, not this digest")
    try:
        statement = _statement(stored.bundle, verifier)
    except AttestationError as exc:
        what = "signature does not verify" if verifier else "bundle cannot be read"
        return [*problems, f"{label}: {what}: {exc}"]
    if statement.subject_digest != subject_digest:
        problems.append(
            f"{label}: the statement's subject is {statement.subject_digest}, not this digest"
        )
    if subject_name is not None and statement.subject_name != subject_name:
        problems.append(
            f"{label}: the statement's subject name is "
            f"{printable(statement.subject_name)[:200]!r}, not {subject_name!r} "
            "(the repository, without tag or digest)"
        )
    if statement.predicate_type != predicate_type:
        problems.append(
            f"{label}: the statement's predicate type is "
            f"{printable(statement.predicate_type)[:80]!r}, not {predicate_type}"
        )
    return problems


def _statement(bundle: bytes, verifier: Verifier | None) -> Statement:
    """The bundle's statement: verified if there is a verifier, else only read."""
    return verifier.verify(bundle) if verifier is not None else unverified_statement(bundle)
