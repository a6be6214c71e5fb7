"""Property tests do not depend on the machine's speed: no Hypothesis deadline applies.

A deadline fails an example that merely ran slowly (under load,
``test_different_sboms_give_different_namespaces`` did); the shared profile that
``tests/conftest.py`` loads turns it off for every test.
"""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st


def test_the_default_settings_have_no_deadline() -> None:
    default = settings.default
    assert default is not None
    assert default.deadline is None


@settings(max_examples=2)
@given(st.integers())
def test_a_slow_example_is_not_a_failure(value: int) -> None:
    """Slower than Hypothesis's own 200 ms default deadline."""
    time.sleep(0.25)
    assert isinstance(value, int)
