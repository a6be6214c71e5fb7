"""Attestations of the published images: statements, signatures, SBOMs, their storage."""
