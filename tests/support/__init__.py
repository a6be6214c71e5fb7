"""Helpers shared by the tests and benchmarks: stand-in engine, registries, small OCI images."""
