"""The attestation package (``pipeline.attest``): pure documents, signatures, storage."""
