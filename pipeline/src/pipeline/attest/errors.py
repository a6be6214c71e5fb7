"""The one error of the supply-chain artifacts: SBOMs, statements, bundles and their checks."""


class AttestationError(ValueError):
    """An SBOM, statement, bundle or signature that is malformed, missing or does not verify."""
