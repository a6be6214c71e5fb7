"""Engine-backed tests (a package, so mypy tells its conftest from tests/conftest.py)."""
