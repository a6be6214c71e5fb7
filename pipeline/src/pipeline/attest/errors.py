"""The one error of the attestation package."""

from __future__ import annotations


class AttestationError(ValueError):
    """An attestation, statement or SBOM that is not what it must be; the message says why."""
