"""Registry bearer tokens are renewed before they lapse, so a long release never sends twice.

GHCR's and Docker Hub's tokens live minutes (``expires_in``; 60 s when the answer gives none);
a release pushes, scans and signs for tens of minutes. A request that carried an expired token
would be refused (401) after its body was sent, and sent again: the session renews a token
within ``TOKEN_RENEWAL_MARGIN`` of its end before the request instead, from the challenge that
bought it. The registry here expires tokens on the test's clock, as a real one would.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline.oci.auth import DEFAULT_TOKEN_LIFETIME, Credentials, token_lifetime
from pipeline.oci.transport import (
    ERROR_BODY,
    TOKEN_RENEWAL_MARGIN,
    Limits,
    RegistrySession,
)

from tests.support.hostile_registry import HostileRegistry, Reply, Request

pytestmark = pytest.mark.anyio

FAST = Limits(read_timeout=2.0, deadline=5.0, retry_pauses=(0.05,), max_retry_after=0.1)
UPLOAD = "/v2/a/b/blobs/uploads/1"
BLOB = b"an attestation bundle" * 100


@dataclass
class ExpiringTokens:
    """A registry's token service on a test clock: each token valid ``lifetime`` seconds."""

    lifetime: int | None
    now: float = 1000.0
    issued: dict[str, float] = field(default_factory=dict)

    def clock(self) -> float:
        return self.now

    def handle(self, server: HostileRegistry) -> Callable[[Request, Reply], None]:
        """Tokens at ``/token``; a request whose token is missing or expired gets a 401."""

        def answer(request: Request, reply: Reply) -> None:
            if request.path == "/token":
                token = f"tok-{len(self.issued) + 1}"
                self.issued[token] = self.now
                document: dict[str, object] = {"token": token}
                if self.lifetime is not None:
                    document["expires_in"] = self.lifetime
                reply.send(200, json.dumps(document).encode())
                return
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            lifetime = self.lifetime or DEFAULT_TOKEN_LIFETIME
            if bearer in self.issued and self.now < self.issued[bearer] + lifetime:
                reply.send(201 if request.method == "PUT" else 200, b"ok")
                return
            challenge = f'Bearer realm="http://{server.host}/token",service="s"'
            reply.send(401, b"", {"WWW-Authenticate": challenge})

        return answer


@asynccontextmanager
async def session_on(
    server: HostileRegistry, tokens: ExpiringTokens
) -> AsyncIterator[RegistrySession]:
    """A session with credentials on ``server``, on the token service's clock; closed after."""
    session = RegistrySession(
        server.host, Credentials("bot", "pw"), limits=FAST, clock=tokens.clock
    )
    try:
        yield session
    finally:
        await session.aclose()


async def put_blob(session: RegistrySession) -> int:
    """One non-idempotent upload of ``BLOB`` (as ``put_blob``'s PUT); its status."""
    answer = await session.request(
        "PUT",
        session.base_url.join(UPLOAD),
        repository="a/b",
        actions="pull,push",
        operation="PUT blob",
        ok=frozenset({201}),
        body=ERROR_BODY,
        idempotent=False,
        content=BLOB,
    )
    return answer.status


@pytest.mark.parametrize("lifetime", [300, None], ids=["expires_in 300", "no expires_in"])
async def test_an_expired_registry_token_is_renewed_before_an_upload_that_is_sent_once(
    lifetime: int | None,
) -> None:
    tokens = ExpiringTokens(lifetime)
    server = HostileRegistry(lambda request, reply: handler(request, reply))
    handler = tokens.handle(server)
    with server:
        async with session_on(server, tokens) as session:
            assert await put_blob(session) == 201
            tokens.now += lifetime or DEFAULT_TOKEN_LIFETIME  # the token has expired
            assert await put_blob(session) == 201

    uploads = [r for r in server.requests if r.path == UPLOAD]
    # The first upload meets the challenge (no token yet); the second goes once, renewed first.
    assert [r.headers.get("authorization") for r in uploads] == [
        None,
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert [len(r.body) for r in uploads[1:]] == [len(BLOB), len(BLOB)]
    assert sorted(tokens.issued) == ["tok-1", "tok-2"]


async def test_a_token_with_time_left_is_kept() -> None:
    tokens = ExpiringTokens(300)
    server = HostileRegistry(lambda request, reply: handler(request, reply))
    handler = tokens.handle(server)
    with server:
        async with session_on(server, tokens) as session:
            await put_blob(session)
            tokens.now += 300 - TOKEN_RENEWAL_MARGIN - 1
            await put_blob(session)

    assert sorted(tokens.issued) == ["tok-1"]


@settings(deadline=None, max_examples=50)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 10_000),
        st.floats(),
        st.just(float("inf")),
        st.just(float("nan")),
        st.text(),
    )
)
def test_a_token_lives_what_its_answer_says_or_sixty_seconds(expires_in: object) -> None:
    lifetime = token_lifetime({"token": "t", "expires_in": expires_in})

    valid = (
        isinstance(expires_in, int | float)
        and not isinstance(expires_in, bool)
        and math.isfinite(expires_in)
        and expires_in > 0
    )
    assert lifetime == (float(expires_in) if valid else DEFAULT_TOKEN_LIFETIME)  # type: ignore[arg-type]
