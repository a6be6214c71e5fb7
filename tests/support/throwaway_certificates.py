"""Throwaway-style signing with a leaf certificate valid only when a test says.

``ThrowawaySigner`` always makes a certificate valid now; to prove that its verifier refuses one
that is not, this signs a statement into a bundle v0.3 with a CA and a leaf made here, the leaf
valid from ``not_before`` to ``not_after``, and gives the ``ThrowawayVerifier`` of that CA. Only
the pipeline's public pieces are used (``bundle_json``, ``pae``, ``ThrowawayVerifier``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pipeline.attest.dsse import PAYLOAD_TYPE, Envelope, pae
from pipeline.attest.signing import THROWAWAY_SAN, ThrowawayVerifier, bundle_json

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""The CA is valid at least from EARLIEST to LATEST (the verifier checks only the leaf's dates)."""


@dataclass(frozen=True)
class DatedSigning:
    """A bundle signed by a leaf of chosen validity, and the verifier of its CA."""

    bundle: bytes
    verifier: ThrowawayVerifier


def signed_with_validity(
    statement: bytes, not_before: datetime, not_after: datetime
) -> DatedSigning:
    """``statement`` signed by a leaf valid from ``not_before`` to ``not_after`` (the CA always)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dated throwaway CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(not_before, EARLIEST))
        .not_valid_after(max(not_after, LATEST))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(THROWAWAY_SAN)]),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    signature = key.sign(pae(PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
    bundle = bundle_json(leaf, Envelope(PAYLOAD_TYPE, statement, signature))
    return DatedSigning(bundle, ThrowawayVerifier(ca))
