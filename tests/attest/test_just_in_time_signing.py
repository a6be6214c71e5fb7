"""Signing credentials are obtained just before use and renewed before they lapse.

``JustInTimeSigner`` against the stand-in GitHub OIDC endpoint and Fulcio on a test clock
(``tests/support/standin_sigstore.py``), and the stand-in itself: it must refuse what GitHub,
Fulcio and Sigstore's verifier refuse, or the release tests prove nothing about lifetimes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline.attest.errors import AttestationError
from pipeline.attest.identity import (
    CERTIFICATE_MARGIN,
    TOKEN_MARGIN,
    JustInTimeSigner,
    check_token_lifetime,
)
from pipeline.attest.signing import ThrowawaySigner
from pipeline.attest.statements import SBOM, statement

from tests.support.standin_sigstore import (
    GITHUB_TOKEN_LIFETIME,
    RELEASE_CLAIMS,
    GitHubClock,
    StandInSigstore,
    identity_token,
    logged,
    workflow_identity,
)

STATEMENT = statement(
    "ghcr.io/steinbeck/qm-nmr-calc-api", "sha256:" + "ab" * 32, SBOM, {"spdxVersion": "SPDX-2.3"}
)
REQUEST = ("https://pipelines.actions.invalid/idtoken", "request-token")


def signer_for(sigstore: StandInSigstore) -> JustInTimeSigner:
    """The release's signer on the stand-in endpoint and Fulcio, on the stand-in's clock."""
    return JustInTimeSigner(
        "keyless (test)",
        lambda: sigstore.oidc_token(*REQUEST),
        sigstore.keyless_signer,
        clock=sigstore.clock,
    )


def token_at(clock: GitHubClock, issued_ago: float) -> str:
    """A GitHub token issued ``issued_ago`` seconds ago (it lives 300 s)."""
    issued = int(clock() - issued_ago)
    return identity_token(
        {**RELEASE_CLAIMS, "iat": issued, "nbf": issued, "exp": issued + GITHUB_TOKEN_LIFETIME}
    )


def test_no_token_is_requested_until_the_first_signature() -> None:
    sigstore = StandInSigstore()
    signer = signer_for(sigstore)
    sigstore.clock.advance(40 * 60)  # a cold build

    assert sigstore.token_requests == []
    signer.sign(STATEMENT)

    assert sigstore.tokens_issued == [int(sigstore.clock() - sigstore.signing_seconds)]
    assert signer.certificates == 1


def test_one_certificate_signs_while_it_has_time_left() -> None:
    sigstore = StandInSigstore()
    signer = signer_for(sigstore)

    for _ in range(5):
        signer.sign(STATEMENT)
        sigstore.clock.advance(60)

    assert signer.certificates == 1
    assert len(sigstore.tokens_issued) == 1


def test_signing_past_the_certificate_lifetime_margin_renews_it_with_a_fresh_token() -> None:
    sigstore = StandInSigstore()
    signer = signer_for(sigstore)
    signer.sign(STATEMENT)
    first = sigstore.certificates[0]

    sigstore.clock.advance(first.not_after - sigstore.clock() - CERTIFICATE_MARGIN + 1)
    signer.sign(STATEMENT)

    assert signer.certificates == 2
    second = sigstore.certificates[1]
    assert second.token_issued > first.token_issued
    assert second.not_after > first.not_after


@pytest.mark.parametrize("issued_ago", [GITHUB_TOKEN_LIFETIME + 1, GITHUB_TOKEN_LIFETIME - 30])
def test_an_expired_token_or_one_near_its_end_is_never_used_to_obtain_a_certificate(
    issued_ago: float,
) -> None:
    """GitHub answered with a stale token (or the clock is off): refused, no Fulcio request."""
    sigstore = StandInSigstore()
    signer = JustInTimeSigner(
        "keyless (test)",
        lambda: token_at(sigstore.clock, issued_ago),
        sigstore.keyless_signer,
        clock=sigstore.clock,
    )

    with pytest.raises(AttestationError, match=r"the identity token just issued (expired|expires)"):
        signer.sign(STATEMENT)
    assert sigstore.certificates == []
    assert sigstore.signatures == []


def test_a_token_from_the_future_is_refused_naming_the_clock() -> None:
    clock = GitHubClock()
    with pytest.raises(AttestationError, match="clock right"):
        check_token_lifetime(token_at(clock, -10 * 60), clock())


def test_a_token_without_an_expiry_is_refused() -> None:
    clock = GitHubClock()
    with pytest.raises(AttestationError, match="no exp claim"):
        check_token_lifetime(identity_token(RELEASE_CLAIMS), clock())


def test_a_certificate_issued_with_too_little_time_left_is_refused() -> None:
    """A Fulcio answer already near its notAfter (a wrong clock here) signs nothing."""
    clock = GitHubClock()
    short = ThrowawaySigner(
        now=clock.datetime(), validity=timedelta(seconds=CERTIFICATE_MARGIN / 2)
    )
    signer = JustInTimeSigner(
        "keyless (test)", lambda: token_at(clock, 0), lambda _token: short, clock=clock
    )

    with pytest.raises(AttestationError, match="certificate just issued"):
        signer.sign(STATEMENT)


@settings(deadline=None, max_examples=60)
@given(
    issued_ago=st.integers(min_value=-600, max_value=900),
    lifetime=st.integers(min_value=1, max_value=3600),
)
def test_a_token_is_used_only_with_the_margin_left_for_every_age_and_lifetime(
    issued_ago: int, lifetime: int
) -> None:
    clock = GitHubClock(now=1_800_000_000.0)
    issued = int(clock()) - issued_ago
    token = identity_token({**RELEASE_CLAIMS, "iat": issued, "exp": issued + lifetime})
    usable = issued + lifetime - clock() >= TOKEN_MARGIN and clock() >= issued - TOKEN_MARGIN

    if usable:
        check_token_lifetime(token, clock())
    else:
        with pytest.raises(AttestationError):
            check_token_lifetime(token, clock())


# --- the stand-in refuses what GitHub, Fulcio and Sigstore refuse ------------------------------


def test_standin_fulcio_refuses_an_expired_token() -> None:
    sigstore = StandInSigstore()
    token = sigstore.oidc_token(*REQUEST)
    sigstore.clock.advance(GITHUB_TOKEN_LIFETIME)

    with pytest.raises(AttestationError, match="ExpiredIdentity"):
        sigstore.keyless_signer(token).certify()


def test_standin_tokens_live_300_seconds_from_issue() -> None:
    sigstore = StandInSigstore()
    token = sigstore.oidc_token(*REQUEST)

    check_token_lifetime(token, sigstore.clock())
    with pytest.raises(AttestationError, match="expired"):
        check_token_lifetime(token, sigstore.clock() + GITHUB_TOKEN_LIFETIME)


def test_standin_certificate_lifetime_is_ten_minutes_and_a_lapsed_one_signs_nothing() -> None:
    sigstore = StandInSigstore()
    keyless = sigstore.keyless_signer(sigstore.oidc_token(*REQUEST))
    not_after = keyless.certify()

    assert not_after - sigstore.clock() == pytest.approx(600, abs=1)
    sigstore.clock.advance(601)
    with pytest.raises(AttestationError, match="ExpiredCertificate"):
        keyless.sign(STATEMENT)


def test_standin_verifier_checks_at_the_logged_time_and_the_identity() -> None:
    """A bundle signed in its certificate's lifetime verifies later; one logged after it, or
    naming another workflow, does not."""
    sigstore = StandInSigstore()
    keyless = sigstore.keyless_signer(sigstore.oidc_token(*REQUEST))
    bundle = keyless.sign(STATEMENT)
    identity = workflow_identity(RELEASE_CLAIMS)
    sigstore.clock.advance(3600)

    assert sigstore.verifier(identity).verify(bundle).subject_digest.startswith("sha256:")
    late = logged(bundle, sigstore.clock())
    with pytest.raises(AttestationError, match="not valid now"):
        sigstore.verifier(identity).verify(late)
    with pytest.raises(AttestationError, match="certificate names"):
        sigstore.verifier(identity + "-other").verify(bundle)
