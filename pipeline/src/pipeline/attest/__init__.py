"""Supply-chain artifacts of a release: SBOMs, SLSA provenance, Sigstore bundles; no Dagger."""
