"""Tests of the supply-chain artifacts: SBOMs, provenance, statements, bundles."""
