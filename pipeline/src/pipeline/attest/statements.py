"""In-toto statements (v1) about one image digest: made, and read back with every rule checked.

A statement names exactly one subject, the repository without tag and its sha256 digest, as
``gh attestation verify`` and cosign expect; its bytes are deterministic (sorted keys, compact).
Reading a statement refuses anything else with an AttestationError that says what was wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.attest.errors import AttestationError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE = "https://slsa.dev/provenance/v1"
SBOM = "https://spdx.dev/Document/v2.3"
SIGNATURE = "https://sigstore.dev/cosign/sign/v1"
PREDICATE_TYPES = (SBOM, PROVENANCE, SIGNATURE)
"""What every published digest carries."""
DIGEST_PREFIX = "sha256:"
_SUBJECT_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z", re.ASCII)
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}\Z", re.ASCII)
DIGEST_ACCEPTED = "sha256:<64 lowercase hex digits>"
JSON_SEPARATORS = (",", ":")


@dataclass(frozen=True)
class Statement:
    """What a statement says: one subject (name, ``sha256:<hex>``) and its typed predicate."""

    subject_name: str
    subject_digest: str
    predicate_type: str
    predicate: Mapping[str, Any]


def statement(
    subject_name: str, subject_digest: str, predicate_type: str, predicate: Mapping[str, Any]
) -> bytes:
    """The statement's JSON bytes (sorted keys, compact); refused if it could not be read back.

    ``subject_name`` is the repository without tag, e.g. ``ghcr.io/steinbeck/qm-nmr-calc-api``.
    """
    _check_text(subject_name, "subject name")
    if not _SUBJECT_DIGEST.match(subject_digest):
        raise AttestationError(
            f"subject digest {subject_digest!r} is not accepted; give {DIGEST_ACCEPTED}"
        )
    _check_text(predicate_type, "predicate type")
    if not isinstance(predicate, Mapping):
        raise AttestationError(
            f"predicate is {type(predicate).__name__}; accepted: a JSON object (a mapping)"
        )
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": subject_name, "digest": {"sha256": subject_digest[len(DIGEST_PREFIX) :]}}
        ],
        "predicateType": predicate_type,
        "predicate": dict(predicate),
    }
    try:
        text = json.dumps(
            document,
            sort_keys=True,
            separators=JSON_SEPARATORS,
            ensure_ascii=False,
            allow_nan=False,
        ).encode()
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise AttestationError(f"predicate is not JSON data: {exc}") from None
    return text


def parse_statement(payload: bytes) -> Statement:
    """What ``payload`` states, or an AttestationError naming the first rule it breaks."""
    document = _json_object(payload)
    if document.get("_type") != STATEMENT_TYPE:
        raise AttestationError(
            f"statement _type is {_shown(document.get('_type'))}; accepted: {STATEMENT_TYPE}"
        )
    subjects = document.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1:
        count = len(subjects) if isinstance(subjects, list) else _shown(subjects)
        raise AttestationError(f"statement has subject {count}; accepted: exactly one subject")
    name, digest = _subject(subjects[0])
    predicate_type = document.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type.strip():
        raise AttestationError(
            f"statement predicateType is {_shown(predicate_type)}; accepted: a non-empty string"
        )
    predicate = document.get("predicate")
    if not isinstance(predicate, dict):
        raise AttestationError(
            f"statement predicate is {_shown(predicate)}; accepted: a JSON object"
        )
    return Statement(name, digest, predicate_type, predicate)


def _subject(subject: object) -> tuple[str, str]:
    """The name and ``sha256:<hex>`` digest of the one subject entry."""
    if not isinstance(subject, dict):
        raise AttestationError(f"statement subject is {_shown(subject)}; accepted: an object")
    name = subject.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AttestationError(
            f"statement subject name is {_shown(name)}; accepted: a non-empty string"
        )
    digests = subject.get("digest")
    if not isinstance(digests, dict):
        raise AttestationError(
            f"statement subject digest is {_shown(digests)}; accepted: an object with sha256"
        )
    sha256 = digests.get("sha256")
    if sha256 is None:
        raise AttestationError(
            f"statement subject digest has no sha256 (has {sorted(digests)[:5]}); "
            "accepted: a sha256 of 64 lowercase hex digits"
        )
    if not isinstance(sha256, str) or not _HEX_DIGEST.match(sha256):
        raise AttestationError(
            f"statement subject sha256 is {_shown(sha256)}; accepted: 64 lowercase hex digits"
        )
    return name, DIGEST_PREFIX + sha256


def _json_object(payload: bytes) -> dict[str, Any]:
    """``payload`` as a JSON object without duplicate keys."""
    if not isinstance(payload, bytes | bytearray):
        raise AttestationError(f"statement is {type(payload).__name__}; accepted: JSON bytes")
    try:
        document = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError:
        raise AttestationError("statement is not UTF-8 text; accepted: JSON bytes") from None
    except RecursionError:
        raise AttestationError("statement is JSON nested too deeply to read") from None
    except ValueError as exc:  # json.JSONDecodeError, or a duplicate key
        raise AttestationError(f"statement is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise AttestationError(
            f"statement is a JSON {type(document).__name__}; accepted: a JSON object"
        )
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key repeats (two readers could see two statements)."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _check_text(value: object, what: str) -> None:
    """Refuse a value that is not a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise AttestationError(f"{what} is {_shown(value)}; accepted: a non-empty string")


def _shown(value: object) -> str:
    """A short, safe rendering of a value found where something else was expected."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
