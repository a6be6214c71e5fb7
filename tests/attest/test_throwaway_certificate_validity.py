"""The throwaway verifier accepts a leaf certificate only while it is valid, as it says.

A bundle whose leaf expired (a second or years ago) or is not valid yet (beyond the clock skew
allowed) is refused with what was wrong; the same bundle made with a leaf valid now verifies, so
the refusal is the validity's and nothing else's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline.attest.errors import AttestationError
from pipeline.attest.signing import CLOCK_SKEW
from pipeline.attest.statements import SIGNATURE, statement

from tests.support.throwaway_certificates import signed_with_validity

STATEMENT = statement("ghcr.io/steinbeck/qm-nmr-calc-api", "sha256:" + "ab" * 32, SIGNATURE, {})
NOT_VALID = "bundle certificate is not valid now (expired or not yet)"


def test_a_leaf_valid_now_verifies() -> None:
    now = datetime.now(UTC)
    signing = signed_with_validity(STATEMENT, now - timedelta(hours=1), now + timedelta(hours=1))

    assert signing.verifier.verify(signing.bundle).subject_digest == "sha256:" + "ab" * 32


def test_an_expired_leaf_is_refused() -> None:
    now = datetime.now(UTC)
    signing = signed_with_validity(STATEMENT, now - timedelta(days=2), now - timedelta(days=1))

    with pytest.raises(AttestationError, match=f"^{re.escape(NOT_VALID)}$"):
        signing.verifier.verify(signing.bundle)


def test_a_leaf_not_valid_yet_beyond_the_clock_skew_is_refused() -> None:
    now = datetime.now(UTC)
    later = now + CLOCK_SKEW + timedelta(minutes=5)
    signing = signed_with_validity(STATEMENT, later, later + timedelta(days=1))

    with pytest.raises(AttestationError, match="not valid now"):
        signing.verifier.verify(signing.bundle)


def test_a_leaf_starting_within_the_clock_skew_verifies() -> None:
    now = datetime.now(UTC)
    signing = signed_with_validity(
        STATEMENT, now + CLOCK_SKEW / 2, now + CLOCK_SKEW + timedelta(days=1)
    )

    assert signing.verifier.verify(signing.bundle).predicate_type == SIGNATURE


@settings(max_examples=30, deadline=None)
@given(
    expired_for=st.timedeltas(min_value=timedelta(seconds=2), max_value=timedelta(days=3650)),
    valid_for=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=365)),
)
def test_every_expired_leaf_is_refused(expired_for: timedelta, valid_for: timedelta) -> None:
    """However long ago it expired and however long it was valid: refused."""
    end = datetime.now(UTC) - expired_for
    signing = signed_with_validity(STATEMENT, end - valid_for, end)

    with pytest.raises(AttestationError, match="not valid now"):
        signing.verifier.verify(signing.bundle)
