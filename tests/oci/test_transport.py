"""``pipeline.oci.transport.RegistrySession`` driven directly: the requests it sends, what it does
with each answer, and the exact errors it raises.

Where the client's tests go through ``RegistryClient`` and match errors loosely, these pin each
behaviour exactly: the headers every request carries, timeouts, the retry pauses
(``Retry-After`` in its forms, the deadline boundary), redirect limits and refusals, body limits
at their exact boundary, compressed and HEAD answers, 401 challenges (how often a request is sent
again, which ``Authorization`` goes where), token requests and their failures, and the full text
of every error. Servers are ``tests/support/hostile_registry.py``'s ``HostileRegistry`` on
loopback, or an ``httpx.MockTransport`` where the registry must be an HTTPS host.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from pipeline.oci import transport as transport_module
from pipeline.oci.auth import Credentials
from pipeline.oci.transport import Answer, BodyKind, Limits, RegistryError, RegistrySession

from tests.support.hostile_registry import HostileRegistry, Reply, Request, status

pytestmark = pytest.mark.anyio

FAST = Limits(read_timeout=2.0, deadline=5.0, retry_pauses=(0.05, 0.05), max_retry_after=0.3)
PROBE = BodyKind("probe body", 8)
"""A tiny body kind, so the limits can be met exactly."""
OK = frozenset({200})
PATH = "/v2/a/b/manifests/1"
OPERATION = "GET probe"
USER, PASSWORD = "bot", "pw-s3cret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class QuickRegistry(HostileRegistry):
    """A ``HostileRegistry`` that notices it is closed within 20 ms (not 200), keeping this
    file of many short server-backed tests fast."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._listener.settimeout(0.02)


@asynccontextmanager
async def opened(
    registry: str,
    *,
    credentials: bool = False,
    limits: Limits = FAST,
    plain_http: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[RegistrySession]:
    """A session on ``registry`` (as USER, or anonymous), closed afterwards."""
    session = RegistrySession(
        registry,
        Credentials(USER, PASSWORD) if credentials else Credentials(None, None),
        plain_http=plain_http,
        limits=limits,
        transport=transport,
    )
    try:
        yield session
    finally:
        await session.aclose()


async def probe(
    session: RegistrySession,
    path: str = PATH,
    *,
    method: str = "GET",
    ok: frozenset[int] = OK,
    body: BodyKind = PROBE,
    headers: Mapping[str, str] | None = None,
    follow_redirects: bool = False,
) -> Answer:
    """An idempotent pull request of ``path`` named ``GET probe``."""
    return await session.request(
        method,
        session.base_url.join(path),
        repository="a/b",
        actions="pull",
        operation=OPERATION,
        ok=ok,
        body=body,
        idempotent=True,
        headers=headers,
        follow_redirects=follow_redirects,
    )


async def probe_error(session: RegistrySession, path: str = PATH, **kwargs: Any) -> RegistryError:
    """The RegistryError ``probe`` raises."""
    with pytest.raises(RegistryError) as caught:
        await probe(session, path, **kwargs)
    return caught.value


def failed(host: str, what: str, operation: str = OPERATION) -> str:
    """The message of a RegistryError of ``operation`` on ``host``."""
    return f"registry {host}: {operation} failed: {what}"


def replying(
    code: int, body: bytes = b"", headers: dict[str, str] | None = None, *, reason: str
) -> Callable[[Request, Reply], None]:
    """Always answer ``code`` with ``body`` and the reason phrase ``reason``."""
    return lambda _request, reply: reply.send(code, body, headers, reason=reason)


def wait_for_close(seconds: float) -> Callable[[Request, Reply], None]:
    """A handler that answers nothing for ``seconds`` (less if the server closes), then 200."""

    def handle(_request: Request, reply: Reply) -> None:
        if not reply.stopping.wait(seconds):
            reply.send(200, b"late")

    return handle


# --- the session itself -----------------------------------------------------------------------


def test_a_session_uses_https_unless_loopback_or_asked_and_shows_no_secret() -> None:
    """HTTPS by default; HTTP to a loopback IP or with ``plain_http``; ``repr`` hides secrets."""
    secure = RegistrySession("ghcr.io", Credentials(USER, PASSWORD))
    assert secure.base_url == httpx.URL("https://ghcr.io")
    assert repr(secure) == (
        "RegistrySession(base_url='https://ghcr.io', Credentials(username='bot', password=<set>))"
    )
    assert RegistrySession("127.0.0.1:5000", Credentials(None, None)).base_url == httpx.URL(
        "http://127.0.0.1:5000"
    )
    plain = RegistrySession("registry.example:5000", Credentials(None, None), plain_http=True)
    assert plain.base_url == httpx.URL("http://registry.example:5000")


def test_credentials_over_plain_http_beyond_loopback_are_refused() -> None:
    """The refusal says what is wrong and what is accepted, nothing more."""
    message = "credentials are never sent over plain HTTP, except to a loopback IP address"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        RegistrySession("registry.example:5000", Credentials(USER, PASSWORD), plain_http=True)


async def test_every_request_names_the_client_and_asks_for_an_uncompressed_answer() -> None:
    """User-Agent is the pipeline's; ``identity`` lets the body limits count raw bytes."""
    with QuickRegistry(status(200, b"ok")) as server:
        async with opened(server.host) as session:
            assert (await probe(session)).body == b"ok"
    (request,) = server.requests
    assert request.headers["user-agent"] == "qm-nmr-calc-pipeline"
    assert request.headers["accept-encoding"] == "identity"


async def test_a_silent_server_times_out_after_the_read_timeout() -> None:
    """``read_timeout`` bounds the wait for a first byte, well within the deadline."""
    limits = Limits(read_timeout=0.2, deadline=10.0)
    with QuickRegistry(wait_for_close(3.0)) as server:
        async with opened(server.host, limits=limits) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, "no answer (ReadTimeout: )")
    assert error.status is None


async def test_an_operation_past_its_deadline_is_named_in_the_error() -> None:
    """The deadline error names the operation and the deadline (``%g``)."""
    limits = Limits(read_timeout=5.0, deadline=0.3)
    with QuickRegistry(wait_for_close(5.0)) as server:
        async with opened(server.host, limits=limits) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, "no complete answer within 0.3 s")


async def test_a_transport_failure_is_a_registry_error_naming_it() -> None:
    """An httpx error becomes ``no answer (TYPE: TEXT)`` of the operation."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with opened("ghcr.io", transport=httpx.MockTransport(refuse)) as session:
        error = await probe_error(session)
    assert str(error) == failed("ghcr.io", "no answer (ConnectError: connection refused)")


# --- retries ----------------------------------------------------------------------------------


class PacedAnyio:
    """anyio as ``pipeline.oci.transport`` sees it, recording each retry pause, not waiting it.

    With ``now`` and ``remaining``, the clock and the deadline it reads are fixed too.
    """

    def __init__(self, now: float | None = None, remaining: float | None = None) -> None:
        self.pauses: list[float] = []
        self.now = now
        self.remaining = remaining

    def __getattr__(self, name: str) -> Any:
        return getattr(anyio, name)

    async def sleep(self, delay: float) -> None:
        self.pauses.append(delay)
        await anyio.sleep(0)

    def current_time(self) -> float:
        return anyio.current_time() if self.now is None else self.now

    def current_effective_deadline(self) -> float:
        if self.now is None or self.remaining is None:
            return anyio.current_effective_deadline()
        return self.now + self.remaining


def then_ok(first: Callable[[Request, Reply], None]) -> Callable[[Request, Reply], None]:
    """``first`` for the first request, 200 ``ok`` for every later one."""
    answered: list[Request] = []

    def handle(request: Request, reply: Reply) -> None:
        answered.append(request)
        if len(answered) == 1:
            first(request, reply)
        else:
            reply.send(200, b"ok")

    return handle


UNAVAILABLE = "Service Unavailable"


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [
        (None, 0.25),
        ("0", 0.0),
        ("1", 1.0),
        ("3600", 2.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Fri, 01 Jan 2100 00:00:00 GMT", 2.0),
        ("soon", 0.25),
    ],
    ids=["absent", "zero", "seconds", "capped", "past-date", "future-date-capped", "garbage"],
)
async def test_the_pause_before_a_retry_follows_retry_after(
    retry_after: str | None, pause: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seconds or an HTTP date (past: no wait), capped at ``max_retry_after``; else the pause."""
    paced = PacedAnyio()
    monkeypatch.setattr(transport_module, "anyio", paced)
    limits = Limits(deadline=5.0, retry_pauses=(0.25,), max_retry_after=2.0)
    headers = {} if retry_after is None else {"Retry-After": retry_after}

    with QuickRegistry(then_ok(replying(503, b"", headers, reason=UNAVAILABLE))) as server:
        async with opened(server.host, limits=limits) as session:
            assert (await probe(session)).body == b"ok"
    assert paced.pauses == [pause]
    assert len(server.requests) == 2


@pytest.mark.parametrize(("remaining", "retried"), [(0.25, False), (0.26, True)])
async def test_no_retry_would_end_at_or_past_the_deadline(
    remaining: float, retried: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause of 0.25 s is taken with 0.26 s left, not with exactly 0.25 s left."""
    monkeypatch.setattr(transport_module, "anyio", PacedAnyio(now=100.0, remaining=remaining))
    limits = Limits(deadline=5.0, retry_pauses=(0.25,))

    with QuickRegistry(then_ok(replying(503, reason=UNAVAILABLE))) as server:
        async with opened(server.host, limits=limits) as session:
            if retried:
                assert (await probe(session)).body == b"ok"
            else:
                error = await probe_error(session)
                assert str(error) == failed(server.host, "503 service unavailable")
    assert len(server.requests) == (2 if retried else 1)


async def test_a_status_neither_accepted_nor_retryable_is_sent_once() -> None:
    """A 404 where only 200 is accepted is final: no retry, and its OCI error is quoted."""
    body = json.dumps({"errors": [{"code": "NAME_UNKNOWN", "message": "no such repo"}]}).encode()
    with QuickRegistry(replying(404, body, reason="Not Found")) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, "404 not found: NAME_UNKNOWN: no such repo")
    assert (error.status, error.code) == (404, "NAME_UNKNOWN")
    assert len(server.requests) == 1


# --- redirects --------------------------------------------------------------------------------


def redirect_chain(length: int) -> Callable[[Request, Reply], None]:
    """``/hop/N`` redirects to ``/hop/N+1`` until ``/hop/length``, which answers ``arrived``."""

    def handle(request: Request, reply: Reply) -> None:
        hop = int(request.path.rsplit("/", 1)[-1])
        if hop < length:
            reply.send(307, b"", {"Location": f"/hop/{hop + 1}"})
        else:
            reply.send(200, b"arrived")

    return handle


async def test_redirects_are_not_followed_unless_asked() -> None:
    """``follow_redirects`` defaults to False: a 307 is then an unexpected status."""
    with QuickRegistry(redirect_chain(1)) as server:
        async with opened(server.host) as session:
            with pytest.raises(RegistryError) as caught:
                await session.request(
                    "GET",
                    session.base_url.join("/hop/0"),
                    repository="a/b",
                    actions="pull",
                    operation=OPERATION,
                    ok=OK,
                    body=PROBE,
                    idempotent=True,
                )
    assert str(caught.value) == failed(server.host, "307 temporary redirect")
    assert [r.path for r in server.requests] == ["/hop/0"]


@pytest.mark.parametrize("length", [3, 4])
async def test_at_most_max_redirects_are_followed(length: int) -> None:
    """``max_redirects`` hops are followed; one more is refused after as many requests."""
    limits = Limits(read_timeout=2.0, deadline=5.0, max_redirects=3)
    with QuickRegistry(redirect_chain(length)) as server:
        async with opened(server.host, limits=limits) as session:
            if length == 3:
                assert (await probe(session, "/hop/0", follow_redirects=True)).body == b"arrived"
            else:
                error = await probe_error(session, "/hop/0", follow_redirects=True)
                assert str(error) == failed(server.host, "more than 3 redirects")
                assert error.status is None
    assert [r.path for r in server.requests] == ["/hop/0", "/hop/1", "/hop/2", "/hop/3"]


@pytest.mark.parametrize(
    ("location", "what"),
    [
        (None, "redirect without a usable Location"),
        ("https://", "redirect without a usable Location"),
        ("ftp://example.com/x", "redirect without a usable Location"),
        ("https:////]", "malformed redirect Location"),
    ],
)
async def test_an_unusable_redirect_is_refused_saying_why(location: str | None, what: str) -> None:
    """No Location, no host, a scheme other than HTTP(S), or a Location that cannot be
    joined: refused with the redirect's status, not followed."""
    headers = {} if location is None else {"Location": location}
    with QuickRegistry(status(307, b"", headers)) as server:
        async with opened(server.host) as session:
            error = await probe_error(session, follow_redirects=True)
    assert str(error) == failed(server.host, what)
    assert error.status == 307
    assert len(server.requests) == 1


def redirecting(location: str, arrived: bytes = b"arrived") -> httpx.MockTransport:
    """Every request for ``PATH`` is redirected to ``location``; any other answers ``arrived``."""
    log: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        log.append(str(request.url))
        if request.url.path == PATH:
            return httpx.Response(307, headers={"Location": location})
        return httpx.Response(200, content=arrived)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("registry", "plain_http", "location"),
    [
        ("ghcr.io", False, "https://cdn.example/blob"),
        ("ghcr.io", False, "http://127.0.0.2/blob"),
        ("registry.example:5000", True, "http://registry.example:5000/v2/a/b/blobs/moved"),
    ],
    ids=["https-elsewhere", "http-to-loopback", "http-same-origin"],
)
async def test_a_safe_redirect_is_followed(registry: str, plain_http: bool, location: str) -> None:
    """HTTPS anywhere; plain HTTP only to a loopback IP or the registry's own origin."""
    transport = redirecting(location)
    async with opened(registry, plain_http=plain_http, transport=transport) as session:
        answer = await probe(session, follow_redirects=True)
    assert (answer.status, answer.body, str(answer.response.url)) == (200, b"arrived", location)


async def test_a_redirect_to_plain_http_elsewhere_is_refused() -> None:
    """The refusal names the host and what is accepted."""
    transport = redirecting("http://cdn.example/blob")
    async with opened("ghcr.io", transport=transport) as session:
        error = await probe_error(session, follow_redirects=True)
    assert str(error) == failed(
        "ghcr.io", "redirect to plain HTTP (cdn.example) refused; accepted: https"
    )
    assert error.status == 307


# --- bodies -----------------------------------------------------------------------------------


def chunked(body: bytes, status_code: int = 200) -> Callable[[Request, Reply], None]:
    """``body`` in one chunk, with no Content-Length."""

    def handle(_request: Request, reply: Reply) -> None:
        reply.head(status_code, {"Transfer-Encoding": "chunked"})
        reply.raw(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")

    return handle


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_exactly_at_its_limit_is_read(framing: str) -> None:
    """The limit is the most bytes accepted, whether declared or counted."""
    handler = status(200, b"12345678") if framing == "content-length" else chunked(b"12345678")
    with QuickRegistry(handler) as server:
        async with opened(server.host) as session:
            assert (await probe(session)).body == b"12345678"


@pytest.mark.parametrize("framing", ["content-length", "chunked", "declared-only"])
async def test_a_body_one_byte_over_its_limit_is_refused(framing: str) -> None:
    """Refused by its Content-Length before a byte is read (a server may never send it), or by
    counting the bytes of a chunked body."""

    def declared_only(_request: Request, reply: Reply) -> None:
        reply.head(200, {"Content-Length": "9"})
        reply.stopping.wait(3.0)

    handler = {
        "content-length": status(200, b"123456789"),
        "chunked": chunked(b"123456789"),
        "declared-only": declared_only,
    }[framing]
    with QuickRegistry(handler) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, "answer is over 8 bytes, the limit for a probe body")
    assert error.status == 200


async def test_an_error_body_is_read_up_to_the_error_limit_not_the_calls() -> None:
    """An error answer is quoted whole though it is larger than the body the call expected."""
    text = b"denied: this repository is closed"
    with QuickRegistry(replying(400, text, reason="Bad Request")) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, "400 bad request: denied: this repository is closed")


@pytest.mark.parametrize(
    "headers", [{"Content-Length": "9"}, {"Content-Length": "0", "Content-Encoding": "gzip"}]
)
async def test_a_head_answer_has_an_empty_body_whatever_its_headers_say(
    headers: dict[str, str],
) -> None:
    """HEAD answers describe a body they never send: neither its size nor encoding is checked."""
    with QuickRegistry(lambda _request, reply: reply.head(200, headers)) as server:
        async with opened(server.host) as session:
            answer = await probe(session, method="HEAD")
    assert (answer.status, answer.body) == (200, b"")
    assert server.requests[0].method == "HEAD"


async def test_a_compressed_answer_is_refused() -> None:
    """Content-Encoding (trimmed, any case) other than identity: refused, as none was asked."""
    with QuickRegistry(status(200, b"\x1f\x8b", {"Content-Encoding": " GZip "})) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    assert str(error) == failed(
        server.host, "answer is compressed (gzip) although none was asked for"
    )
    assert error.status == 200


async def test_a_compressed_error_answer_is_reported_without_its_body() -> None:
    """Its status is reported; its compressed bytes are not quoted."""
    compressed = replying(400, b"\x1f\x8b\x08", {"Content-Encoding": "gzip"}, reason="Bad Request")
    with QuickRegistry(compressed) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, "400 bad request")


async def test_an_empty_content_encoding_is_no_encoding() -> None:
    """An empty Content-Encoding is accepted as identity."""
    with QuickRegistry(status(200, b"12345678", {"Content-Encoding": ""})) as server:
        async with opened(server.host) as session:
            assert (await probe(session)).body == b"12345678"


# --- 401 challenges ---------------------------------------------------------------------------


def unauthorized(challenge: str | None) -> Callable[[Request, Reply], None]:
    """Always 401, with ``challenge`` as WWW-Authenticate if given."""
    headers = {} if challenge is None else {"WWW-Authenticate": challenge}
    return lambda _request, reply: reply.send(401, b"", headers)


WANTS_CREDENTIALS = "the registry wants credentials: give --username/--password"


@pytest.mark.parametrize(
    ("challenge", "credentials", "hint"),
    [
        ('Basic realm="r"', False, WANTS_CREDENTIALS),
        (None, False, WANTS_CREDENTIALS),
        ('Bearer service="no-realm"', False, WANTS_CREDENTIALS),
        (None, True, "check --username/--password"),
    ],
    ids=["basic-anonymous", "none-anonymous", "bearer-without-realm", "none-with-credentials"],
)
async def test_a_401_with_nothing_to_answer_it_is_sent_once(
    challenge: str | None, credentials: bool, hint: str
) -> None:
    """No challenge, a realm-less Bearer one, or Basic without credentials: one request,
    and a hint fitting whether credentials were given."""
    with QuickRegistry(unauthorized(challenge)) as server:
        async with opened(server.host, credentials=credentials) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, f"401 unauthorized ({hint})")
    assert [r.headers.get("authorization") for r in server.requests] == [None]


async def test_refused_basic_credentials_are_not_sent_twice_in_one_request() -> None:
    """After basic credentials were refused, a later request carries them once and stops."""
    with QuickRegistry(unauthorized('Basic realm="r"')) as server:
        async with opened(server.host, credentials=True) as session:
            first = await probe_error(session)
            assert [r.headers.get("authorization") for r in server.requests] == [None, BASIC]
            second = await probe_error(session)
    assert (
        str(first)
        == str(second)
        == failed(server.host, "401 unauthorized (check --username/--password)")
    )
    assert [r.headers.get("authorization") for r in server.requests] == [None, BASIC, BASIC]


@pytest.mark.parametrize(
    ("challenge", "authorization"),
    [('Basic realm="r"', BASIC), ('Bearer realm="https://ghcr.io/token"', "Bearer tok")],
)
async def test_the_sessions_credentials_replace_an_authorization_the_caller_gave(
    challenge: str, authorization: str
) -> None:
    """Once the session answers a challenge, its Authorization is the only one sent."""
    sent: list[list[str]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get_list("authorization"))
        if request.url.path == "/token":
            return httpx.Response(200, json={"token": "tok"})
        if sent[-1] == [authorization]:
            return httpx.Response(200, content=b"ok")
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    transport = httpx.MockTransport(handle)
    async with opened("ghcr.io", credentials=True, transport=transport) as session:
        answer = await probe(session, headers={"Authorization": "Bearer caller"})
    assert answer.body == b"ok"
    assert sent[0] == ["Bearer caller"]
    assert sent[-1] == [authorization]


# --- token requests ---------------------------------------------------------------------------


def bearer_registry(realm: Callable[[Request, Reply], None]) -> HostileRegistry:
    """A registry answering 401 with a Bearer challenge whose realm is its own ``/token``,
    answered by ``realm``; a request with ``Bearer tok`` gets 200 ``ok``."""

    def handle(request: Request, reply: Reply) -> None:
        if request.path == "/token":
            realm(request, reply)
        elif request.headers.get("authorization") == "Bearer tok":
            reply.send(200, b"ok")
        else:
            challenge = f'Bearer realm="http://{server.host}/token",service="probe"'
            reply.send(401, b"", {"WWW-Authenticate": challenge})

    server = QuickRegistry(handle)
    return server


TOKEN_QUERY = "/token?service=probe&scope=repository%3Aa%2Fb%3Apull"


async def test_a_token_is_fetched_with_a_get_to_the_realm() -> None:
    """GET to the realm with service and scope, then the request again with the token."""
    with bearer_registry(status(200, b'{"token": "tok"}')) as server:
        async with opened(server.host) as session:
            assert (await probe(session)).body == b"ok"
    assert [(r.method, r.target) for r in server.requests] == [
        ("GET", PATH),
        ("GET", TOKEN_QUERY),
        ("GET", PATH),
    ]


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (b"not json", "token answer is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (b'{"access": "tok"}', "answer has no 'token' or 'access_token' of printable ASCII"),
        (
            b'{"token": "tok", "padding": "' + b"x" * (64 * 1024) + b'"}',
            "answer is over 65536 bytes, the limit for a token answer",
        ),
    ],
    ids=["not-json", "no-token", "oversize"],
)
async def test_a_bad_token_answer_is_an_error_of_the_token_request(
    answer: bytes, what: str
) -> None:
    """Not JSON, no token, or over 64 KiB: an error of ``OPERATION: token request to HOST``
    with the token answer's status."""
    with bearer_registry(status(200, answer)) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    operation = f"{OPERATION}: token request to 127.0.0.1"
    assert str(error) == failed(server.host, what, operation)
    assert error.status == 200


async def test_an_unusable_token_realm_is_an_error_of_the_token_request() -> None:
    """The realm's problem is reported before any token request is sent, without status."""
    with QuickRegistry(unauthorized('Bearer realm="/token",service="s"')) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    what = "token realm is not an absolute URL; accepted: https://HOST/PATH"
    assert str(error) == failed(server.host, what, f"{OPERATION}: token request")
    assert error.status is None


async def test_a_new_token_is_asked_for_with_the_credentials_and_tokens_are_scrubbed() -> None:
    """When a token expires, the realm gets the user's basic credentials again, never the old
    token; and a token the registry echoes is shown as ``***``."""
    issued: list[str] = []
    valid: list[str] = []

    def handle(request: Request, reply: Reply) -> None:
        if request.path == "/token":
            issued.append(f"tok-secret-{len(issued) + 1}")
            valid[:] = issued[-1:]
            reply.json(200, {"token": issued[-1]})
        elif request.path == "/echo":
            message = f"token {request.headers.get('authorization')} refused"
            errors = {"errors": [{"code": "DENIED", "message": message}]}
            reply.send(400, json.dumps(errors).encode(), reason="Bad Request")
        elif valid and request.headers.get("authorization") == f"Bearer {valid[0]}":
            reply.send(200, b"ok")
        else:
            challenge = f'Bearer realm="http://{server.host}/token",service="probe"'
            reply.send(401, b"", {"WWW-Authenticate": challenge})

    with QuickRegistry(handle) as server:
        async with opened(server.host, credentials=True) as session:
            assert (await probe(session)).body == b"ok"
            valid.clear()  # the first token expires
            assert (await probe(session)).body == b"ok"
            error = await probe_error(session, "/echo")
    token_requests = [r for r in server.requests if r.path == "/token"]
    assert [(r.target, r.headers.get("authorization")) for r in token_requests] == [
        (TOKEN_QUERY, BASIC),
        (TOKEN_QUERY, BASIC),
    ]
    assert str(error) == failed(server.host, "400 bad request: DENIED: token Bearer *** refused")


# --- error text -------------------------------------------------------------------------------


def errors(*entries: dict[str, str]) -> bytes:
    """An OCI error answer holding ``entries``."""
    return json.dumps({"errors": list(entries)}).encode()


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (
            errors({"code": "DENIED", "message": "no"}, {"code": "UNAUTHORIZED", "message": "go"}),
            "DENIED",
            ": DENIED: no; UNAUTHORIZED: go",
        ),
        (errors({"message": "no code"}), "None", ": ?: no code"),
        (errors({"code": "DENIED"}), "DENIED", ": DENIED:"),
        (errors(), None, ""),
        (b"\xff\xfeplain text", None, ": \ufffd\ufffdplain text"),
        (errors({"code": "C" * 64, "message": "m"}), "C" * 64, f": {'C' * 64}: m"),
        (errors({"code": "C" * 65, "message": "m"}), "C" * 61 + "...", f": {'C' * 65}: m"),
    ],
    ids=["two", "no-code", "no-message", "empty-list", "not-utf-8", "code-64", "code-65"],
)
async def test_an_error_answer_is_quoted_with_its_first_code(
    body: bytes, code: str | None, detail: str
) -> None:
    """Every ``CODE: message``, joined by ``; ``; the first code (cut at 64 characters) kept;
    a body that is no OCI error list is quoted as text, undecodable bytes replaced."""
    with QuickRegistry(replying(400, body, reason="Bad Request")) as server:
        async with opened(server.host) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, f"400 bad request{detail}")
    assert (error.status, error.code) == (400, code)


@pytest.mark.parametrize(
    ("status_code", "reason", "credentials", "shown"),
    [
        (404, "Not Found", False, "404 not found"),
        (599, "", False, "599 error"),
        (400, "R" * 60, False, f"400 {'r' * 60}"),
        (400, "R" * 61, False, f"400 {'r' * 57}..."),
        (
            403,
            "Forbidden",
            False,
            "403 forbidden (the credentials lack permission for this repository; pushing to "
            "GHCR needs a token with packages: write)",
        ),
        (404, "Not Found", True, "404 not found"),
    ],
    ids=["reason", "no-reason", "reason-60", "reason-61", "403-hint", "404-with-credentials"],
)
async def test_a_status_error_shows_the_status_its_reason_and_a_hint(
    status_code: int, reason: str, credentials: bool, shown: str
) -> None:
    """The reason phrase lowercased and cut at 60 characters (``error`` if none); only a 401
    without credentials asks for credentials."""

    def handle(_request: Request, reply: Reply) -> None:
        reply.raw(f"HTTP/1.1 {status_code} {reason}\r\nContent-Length: 0\r\n\r\n".encode())

    with QuickRegistry(handle) as server:
        async with opened(server.host, credentials=credentials) as session:
            error = await probe_error(session)
    assert str(error) == failed(server.host, shown)
    assert error.status == status_code


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("a" * 300, None, "a" * 300),
        ("a" * 301, None, "a" * 297 + "..."),
        ("b" * 10, 10, "b" * 10),
        ("b" * 11, 10, "b" * 7 + "..."),
    ],
)
def test_server_text_is_cut_to_its_limit_with_an_ellipsis(
    text: str, limit: int | None, shown: str
) -> None:
    """Text up to the limit is kept; longer text is cut to the limit, ``...`` included."""
    session = RegistrySession("ghcr.io", Credentials(None, None))
    assert (session.server_text(text) if limit is None else session.server_text(text, limit)) == (
        shown
    )
