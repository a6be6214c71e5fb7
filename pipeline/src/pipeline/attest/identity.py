"""Signing that stays inside its credentials' lifetimes, however long the release runs.

Keyless signing needs two short-lived credentials: GitHub's OIDC identity token (it expires
300 s after issue, ``exp - iat = 300``; no way to ask for longer) buys a Fulcio certificate
(10 minutes), and the certificate signs. A cold release builds for tens of minutes before the
first signature, and its SBOM scans and signatures take minutes more. So nothing is requested
up front: ``JustInTimeSigner`` asks for a fresh token just before the first signature, checks
it has time left, obtains a certificate with it at once, and before each later signature makes
a new signer (fresh token, new certificate) if the certificate is within
``CERTIFICATE_MARGIN`` of its ``notAfter``. A rerun takes the same path.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pipeline.attest.errors import AttestationError
from pipeline.attest.provenance import token_claims
from pipeline.attest.signing import CertifiedSigner

Clock = Callable[[], float]
"""The time now, in seconds since the epoch (``time.time``; a test's clock in the tests)."""

TOKEN_MARGIN = 60.0
"""Seconds an identity token must have left when it is used: Fulcio's answer takes a few."""
CERTIFICATE_MARGIN = 120.0
"""Seconds a certificate must have left before a signature: a signature (Rekor included) and
the clock skew between this machine and Sigstore's fit well within it."""


def wall_clock() -> float:
    """The machine's time, in seconds since the epoch."""
    return time.time()


class JustInTimeSigner:
    """Signs with a signer obtained just before it is needed, renewed before it lapses.

    ``request_token`` asks the identity provider for a new token (GitHub's OIDC endpoint);
    ``make_signer`` turns a token into a signer whose ``certify`` obtains its certificate
    (``KeylessSigner``). Thread-safe: signatures run in threads, one renewal at a time.
    """

    def __init__(
        self,
        identity: str,
        request_token: Callable[[], str],
        make_signer: Callable[[str], CertifiedSigner],
        *,
        clock: Clock = wall_clock,
    ) -> None:
        self.identity = identity
        """One line for the release output: who signs."""
        self._request_token = request_token
        self._make_signer = make_signer
        self._clock = clock
        self._lock = threading.Lock()
        self._signer: CertifiedSigner | None = None
        self._not_after = 0.0
        self.certificates = 0
        """How many certificates (and so identity tokens) this release has used so far."""

    def __repr__(self) -> str:
        return f"JustInTimeSigner({self.identity!r}, {self.certificates} certificates)"

    def sign(self, statement: bytes) -> bytes:
        """The bundle of ``statement``, signed by a certificate with time left."""
        return self._current().sign(statement)

    def _current(self) -> CertifiedSigner:
        """The signer to use now: the current one, or a new one if it is near its end."""
        with self._lock:
            if self._signer is None or self._remaining() < CERTIFICATE_MARGIN:
                self._signer, self._not_after = self._renewed()
                self.certificates += 1
            return self._signer

    def _remaining(self) -> float:
        """Seconds the current certificate has left."""
        return self._not_after - self._clock()

    def _renewed(self) -> tuple[CertifiedSigner, float]:
        """A new signer from a fresh token, its certificate obtained now; and its notAfter."""
        token = self._request_token()
        check_token_lifetime(token, self._clock())
        signer = self._make_signer(token)
        not_after = signer.certify()
        left = not_after - self._clock()
        if left < CERTIFICATE_MARGIN:
            raise AttestationError(
                f"the signing certificate just issued is valid until {utc(not_after)}, only "
                f"{left:.0f} s from now; needed: at least {CERTIFICATE_MARGIN:.0f} s (is this "
                "machine's clock right?)"
            )
        return signer, not_after


def check_token_lifetime(token: str, now: float) -> None:
    """Refuse a token that is not yet valid, expired, or within ``TOKEN_MARGIN`` of expiring."""
    claims = token_claims(token)
    expiry = numeric_date(claims.get("exp"))
    not_before = numeric_date(claims.get("nbf", claims.get("iat")))
    if expiry is None:
        raise AttestationError("the identity token has no exp claim; accepted: a JWT with exp")
    if not_before is not None and now < not_before - TOKEN_MARGIN:
        raise AttestationError(
            f"the identity token is valid only from {utc(not_before)} (now {utc(now)}): is this "
            "machine's clock right?"
        )
    if expiry - now < TOKEN_MARGIN:
        state = "expired" if expiry <= now else "expires"
        raise AttestationError(
            f"the identity token just issued {state} at {utc(expiry)} (now {utc(now)}); needed: "
            f"at least {TOKEN_MARGIN:.0f} s left to obtain a signing certificate"
        )


def numeric_date(value: object) -> float | None:
    """A claim's NumericDate (seconds since the epoch), or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def utc(seconds: float) -> str:
    """Seconds since the epoch as an RFC 3339 UTC time."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
