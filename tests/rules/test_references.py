"""Owners as GitHub spells them: the only owners a repository reference is made of."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline.rules.references import normalize_owner


@given(st.text(max_size=45))
def test_owners_follow_githubs_rules(owner: str) -> None:
    github = (
        0 < len(owner) <= 39
        and owner.isascii()
        and all(c.isalnum() or c == "-" for c in owner)
        and not owner.startswith("-")
        and not owner.endswith("-")
        and "--" not in owner
    )
    try:
        normalized = normalize_owner(owner)
    except ValueError:
        assert not github
    else:
        assert github
        assert normalized == owner.lower()


@pytest.mark.parametrize("owner", ["\u212aelvin", "a" * 40, "a--b", "a.b", "a_b", "ünï"])
def test_compatibility_forms_and_non_github_owners_are_refused(owner: str) -> None:
    with pytest.raises(ValueError, match="GitHub"):
        normalize_owner(owner)
