"""GitHub's OIDC endpoint, Fulcio and Rekor as a release meets them: on a clock tests advance.

What the real ones do with time, which a release must survive (``shared/reference/
supply-chain.md``, read from sigstore-python 4.x and GitHub's documented behaviour):
- GitHub's OIDC endpoint issues a JWT with ``iat`` = ``nbf`` = now and ``exp = iat + 300``;
- Fulcio refuses a token outside ``[nbf, exp)`` (sigstore-python raises ``ExpiredIdentity``
  before asking) and issues a certificate valid 10 minutes, naming the token's workflow;
- a signer past its certificate's ``notAfter`` refuses to sign (``ExpiredCertificate``);
- a bundle is verified at the time Rekor logged it (its integrated time), not at the time of
  verification, and against the identity the verifier expects.

``GitHubClock`` is the time all of them read; the stand-in engine advances it as builds,
pushes and scans run (minutes each), so a test simulates a 40-minute release in seconds.
Signatures are made with a throwaway CA standing for Fulcio's; a bundle carries its
integrated time in a transparency-log entry, as Rekor's would.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from pipeline.attest.errors import AttestationError
from pipeline.attest.provenance import GITHUB, token_claims
from pipeline.attest.signing import ThrowawayCA, ThrowawaySigner, read_bundle
from pipeline.attest.statements import Statement

GITHUB_TOKEN_LIFETIME = 300
"""Seconds from ``iat`` to ``exp`` of a GitHub Actions OIDC token."""
FULCIO_CERTIFICATE_LIFETIME = timedelta(minutes=10)
RELEASE_WORKFLOW = ".github/workflows/release.yml"


def release_claims(repository: str, tag: str) -> dict[str, str]:
    """The claims of tokens GitHub issues to ``repository``'s release workflow run on ``tag``."""
    return {
        "iss": "https://token.actions.githubusercontent.com",
        "aud": "sigstore",
        "sub": f"repo:{repository}:ref:refs/tags/{tag}",
        "repository": repository,
        "job_workflow_ref": f"{repository}/{RELEASE_WORKFLOW}@refs/tags/{tag}",
        "job_workflow_sha": "c0ffee" + "0" * 34,
        "run_id": "4242",
        "run_attempt": "1",
    }


RELEASE_CLAIMS = release_claims("steinbeck/qm-nmr-calc", "v2.4.0")
RELEASE_WORKFLOW_REF = RELEASE_CLAIMS["job_workflow_ref"]
"""The workflow run the stand-in endpoint names until a release tag is read upstream."""


@dataclass
class GitHubClock:
    """Simulated time, in seconds since the epoch: starts at the real time, moves when told."""

    now: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self) -> float:
        """The time now."""
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        with self._lock:
            self.now += seconds

    def datetime(self) -> datetime:
        """The time now, as an aware datetime."""
        return datetime.fromtimestamp(self(), UTC)


def identity_token(claims: Mapping[str, Any]) -> str:
    """An unsigned JWT with ``claims``: only its claims are read before Fulcio."""
    body = base64.urlsafe_b64encode(json.dumps(dict(claims)).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{body}.c2lnbmF0dXJl"


def workflow_identity(claims: Mapping[str, Any]) -> str:
    """The identity Fulcio writes into a GitHub Actions certificate: the workflow at its ref."""
    return f"{GITHUB}/{claims['job_workflow_ref']}"


@dataclass(frozen=True)
class Certificate:
    """A certificate the stand-in Fulcio issued, and when the token that bought it was issued."""

    token_issued: float
    not_before: float
    not_after: float


@dataclass
class StandInSigstore:
    """GitHub's OIDC endpoint, Fulcio and Rekor, on ``clock``; what was asked of them.

    ``failing_from``: the endpoint answers the first that many token requests, then fails
    every later one (as a GitHub outage would), until ``failing_from`` is set to None.
    """

    clock: GitHubClock = field(default_factory=GitHubClock)
    claims: Mapping[str, Any] = field(default_factory=lambda: dict(RELEASE_CLAIMS))
    failing_from: int | None = None
    claims_follow_release_tag: bool = True
    """Whether a release tag read upstream makes tokens name that tag's release workflow run
    (``release_run``); False for a run of another workflow (CI's keyless rehearsal)."""
    signing_seconds: float = 2.0
    """Simulated seconds one signature takes (Rekor's answer included)."""
    token_requests: list[tuple[str, str]] = field(default_factory=list)
    """The (URL, token) pairs the module asked the endpoint with."""
    tokens_issued: list[float] = field(default_factory=list)
    """When each token was issued."""
    certificates: list[Certificate] = field(default_factory=list)
    """Each certificate Fulcio issued."""
    signatures: list[float] = field(default_factory=list)
    """When each signature was logged."""
    verified_identities: list[str] = field(default_factory=list)
    _ca: ThrowawayCA = field(default_factory=lambda: _session_ca())

    def release_run(self, repository: str, tag: str) -> None:
        """From now on, tokens name ``repository``'s release workflow run on ``tag``."""
        if self.claims_follow_release_tag:
            self.claims = release_claims(repository, tag)

    def oidc_token(self, request_url: str, request_token: str) -> str:
        """GitHub's OIDC endpoint: a token valid from now for 300 s."""
        self.token_requests.append((request_url, request_token))
        if self.failing_from is not None and len(self.tokens_issued) >= self.failing_from:
            raise AttestationError(
                "GitHub OIDC token request to pipelines.actions.invalid answered 503: unavailable"
            )
        issued = int(self.clock())
        self.tokens_issued.append(issued)
        return identity_token(
            {**self.claims, "iat": issued, "nbf": issued, "exp": issued + GITHUB_TOKEN_LIFETIME}
        )

    def keyless_signer(self, token: str) -> StandInKeylessSigner:
        """What ``KeylessSigner(token)`` is: its certificate comes from the stand-in Fulcio."""
        return StandInKeylessSigner(self, token)

    def certificate_for(self, token: str) -> ThrowawaySigner:
        """Fulcio: a 10-minute certificate for a key, if ``token`` is valid now."""
        claims = token_claims(token)
        now = self.clock()
        if not claims.get("nbf", claims["iat"]) <= now < claims["exp"]:
            raise AttestationError("keyless signing failed: ExpiredIdentity: ")
        signer = ThrowawaySigner(
            ca=self._ca,
            now=self.clock.datetime(),
            validity=FULCIO_CERTIFICATE_LIFETIME,
            identity=workflow_identity(claims),
        )
        self.certificates.append(Certificate(claims["iat"], now, signer.certify()))
        return signer

    def verifier(self, identity: str) -> StandInVerifier:
        """Sigstore's verifier for bundles signed by ``identity``."""
        self.verified_identities.append(identity)
        return StandInVerifier(self._ca, identity)


class StandInKeylessSigner:
    """``KeylessSigner`` on the stand-in Fulcio and Rekor, with sigstore-python's expiry rules."""

    identity = "keyless (stand-in Fulcio)"

    def __init__(self, sigstore: StandInSigstore, token: str) -> None:
        self._sigstore = sigstore
        self._token = token
        self._signer: ThrowawaySigner | None = None

    def certify(self) -> float:
        """The certificate's notAfter; obtained now (the token must be valid now)."""
        if self._signer is None:
            self._signer = self._sigstore.certificate_for(self._token)
        return self._signer.certify()

    def sign(self, statement: bytes) -> bytes:
        """A bundle logged now; refused past the certificate's notAfter."""
        not_after = self.certify()
        now = self._sigstore.clock()
        if now > not_after:
            raise AttestationError("keyless signing failed: ExpiredCertificate: ")
        assert self._signer is not None
        self._sigstore.signatures.append(now)
        self._sigstore.clock.advance(self._sigstore.signing_seconds)
        return logged(self._signer.sign(statement), now)


def logged(bundle: bytes, integrated_time: float) -> bytes:
    """``bundle`` with a transparency-log entry saying when it was logged."""
    document = json.loads(bundle)
    document["verificationMaterial"]["tlogEntries"] = [
        {"integratedTime": str(int(integrated_time)), "kindVersion": {"kind": "dsse"}}
    ]
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def integrated_time(bundle: bytes) -> datetime:
    """When the stand-in Rekor logged ``bundle``; refused without a log entry."""
    entries = json.loads(bundle)["verificationMaterial"].get("tlogEntries") or []
    if len(entries) != 1:
        raise AttestationError("bundle has no transparency log entry; a keyless bundle needs one")
    return datetime.fromtimestamp(int(entries[0]["integratedTime"]), UTC)


class StandInVerifier:
    """Sigstore's verification: the session CA, at the logged time, and the expected identity."""

    def __init__(self, ca: ThrowawayCA, identity: str) -> None:
        self._ca = ca
        self.identity = identity

    def verify(self, bundle: bytes) -> Statement:
        """The statement; AttestationError as sigstore-python's verifier would refuse."""
        contents = read_bundle(bundle)
        when = integrated_time(bundle)
        statement = self._ca.verifier(now=lambda: when).verify(bundle)
        names = contents.certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.UniformResourceIdentifier)
        if names != [self.identity]:
            raise AttestationError(
                f"bundle does not verify for {self.identity}: the certificate names {names}"
            )
        return statement


_CA_LOCK = threading.Lock()
_CA: list[ThrowawayCA] = []


def _session_ca() -> ThrowawayCA:
    """One stand-in Fulcio CA for the test session (valid two days from its start)."""
    with _CA_LOCK:
        if not _CA:
            _CA.append(ThrowawayCA())
        return _CA[0]


class ReleaseWorkflowSigner:
    """Signs as the release workflow run of ``owner``'s repository on ``tag`` does, through the
    stand-in Fulcio and Rekor: a bundle the release itself could have made (or that a rerun
    must keep), for tests that plant or read back attestations."""

    def __init__(self, owner: str, tag: str) -> None:
        self._sigstore = StandInSigstore(claims=release_claims(f"{owner}/qm-nmr-calc", tag))
        self.identity = workflow_identity(self._sigstore.claims)

    def sign(self, statement: bytes) -> bytes:
        """A bundle of ``statement``, signed and logged now."""
        token = self._sigstore.oidc_token("https://pipelines.actions.invalid/idtoken", "t")
        return self._sigstore.keyless_signer(token).sign(statement)

    def verifier(self) -> StandInVerifier:
        """The verifier the release checks its bundles with."""
        return self._sigstore.verifier(self.identity)


def release_signer(repository_path: str, tag: str = "v2.4.0") -> ReleaseWorkflowSigner:
    """The release workflow's signer for the owner of ``repository_path`` (``owner/name``)."""
    return ReleaseWorkflowSigner(repository_path.split("/", 1)[0], tag)


def release_identity(repository_path: str, tag: str = "v2.4.0") -> str:
    """The identity the release workflow of ``repository_path``'s owner signs as."""
    return release_signer(repository_path, tag).identity
