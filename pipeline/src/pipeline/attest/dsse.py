"""DSSE envelopes (v1.0): the signed wrapper of an in-toto statement inside a Sigstore bundle.

The signature covers the pre-authentication encoding (``pae``) of the payload type and payload,
so neither can be changed without breaking it. An envelope here holds exactly one signature, as
Sigstore bundles do.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from pipeline.attest.errors import AttestationError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The payload type of an in-toto statement; any other is refused."""


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: the payload, its type and its one signature (raw bytes, not base64)."""

    payload_type: str
    payload: bytes
    signature: bytes


def pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE pre-authentication encoding: what the signature is computed over.

    ``DSSEv1 <len(type)> <type> <len(payload)> <payload>``, lengths in bytes, in decimal.
    """
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def envelope_document(envelope: Envelope) -> dict[str, Any]:
    """The envelope as the JSON object of a bundle's ``dsseEnvelope``."""
    return {
        "payload": base64.b64encode(envelope.payload).decode(),
        "payloadType": envelope.payload_type,
        "signatures": [{"sig": base64.b64encode(envelope.signature).decode()}],
    }


def parse_envelope(document: object) -> Envelope:
    """The envelope in a bundle's ``dsseEnvelope`` object, refused unless well-formed."""
    if not isinstance(document, dict):
        raise AttestationError("bundle dsseEnvelope is not an object; accepted: a DSSE envelope")
    payload_type = document.get("payloadType")
    if not isinstance(payload_type, str) or not payload_type:
        raise AttestationError("DSSE envelope has no payloadType string")
    signatures = document.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise AttestationError("DSSE envelope does not hold exactly one signature")
    signature = signatures[0]
    if not isinstance(signature, dict):
        raise AttestationError("DSSE envelope signature is not an object")
    return Envelope(
        payload_type=payload_type,
        payload=_base64(document.get("payload"), "payload"),
        signature=_base64(signature.get("sig"), "signature"),
    )


def _base64(value: object, what: str) -> bytes:
    """Standard base64 text decoded; anything else is refused."""
    if not isinstance(value, str) or not value:
        raise AttestationError(f"DSSE envelope {what} is missing; accepted: base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AttestationError(f"DSSE envelope {what} is not base64") from None
