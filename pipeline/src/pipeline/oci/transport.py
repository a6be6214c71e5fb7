"""The bounded HTTP session under the registry client: limits, deadlines, retries, credentials.

Whatever a registry sends, a request ends, in bounded memory, with an answer or a RegistryError:

- every body is streamed and cut at a limit fitting its kind (``BodyKind``), endless ones too;
- every operation has an overall deadline (``Limits.deadline``), on top of per-read timeouts;
- 429 and 5xx answers to idempotent requests are sent again a bounded number of times, after
  ``Retry-After`` (capped) or a growing pause, and never past the deadline;
- credentials go only to the registry's own origin, over HTTPS unless it is a loopback IP
  address; redirects are followed only where asked, and never carry credentials elsewhere;
- every message is scrubbed of every secret before it is shortened, and server text in it is
  escaped (``text.printable``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
import httpx

from pipeline.oci.auth import (
    Challenge,
    Credentials,
    parse_challenge,
    token_lifetime,
    token_of,
    token_request,
)
from pipeline.oci.documents import parse_json_object
from pipeline.oci.names import host_of, is_loopback_ip, normalize_registry
from pipeline.oci.text import printable

USER_AGENT = "qm-nmr-calc-pipeline"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_ERROR_DETAIL = 300
"""Characters of a registry's error text quoted in a RegistryError (after scrubbing)."""
KIB = 1024
MIB = 1024 * KIB

_HINTS = {
    401: "check --username/--password",
    403: "the credentials lack permission for this repository; pushing to GHCR needs "
    "a token with packages: write",
}
_HINT_NO_CREDENTIALS = "the registry wants credentials: give --username/--password"
WRITE_ACCESS_HINT = (
    "the token may not write this package: on GHCR, the package's settings must list the "
    'repository the workflow runs in under "Manage Actions access" with the Write role, or '
    "the token must be a personal access token (classic) with write:packages"
)
"""What to check when a registry refuses a write (a push, a tag, a push-scope token)."""


@dataclass(frozen=True)
class BodyKind:
    """What an answer body is, and the most bytes read of it."""

    name: str
    limit: int


MANIFEST_BODY = BodyKind("manifest", 4 * MIB)
"""Distribution refuses manifests over 4 MiB; a larger answer is not a manifest."""
CONFIG_BODY = BodyKind("image config", 8 * MIB)
TAG_LIST_BODY = BodyKind("tag list page", 4 * MIB)
TOKEN_BODY = BodyKind("token answer", 64 * KIB)
TOKEN_RENEWAL_MARGIN = 10.0
"""Seconds before a bearer token's end at which it is renewed before a request, not after a
401: a request never carries a token that may lapse on the way (a blob is never sent twice)."""
ERROR_BODY = BodyKind("error answer", 64 * KIB)
"""Error answers are cut here, not refused: only their first words are quoted."""


@dataclass(frozen=True)
class Limits:
    """How long and how often the client waits for a registry."""

    read_timeout: float = 10.0
    """Seconds to connect, or between two bytes of an answer."""
    deadline: float = 30.0
    """Seconds for one whole operation: retries, token requests, redirects and pages included."""
    retry_pauses: tuple[float, ...] = (0.5, 1.0, 2.0)
    """Pauses before each repeat of an idempotent request answered 429 or 5xx."""
    max_retry_after: float = 10.0
    """The longest ``Retry-After`` honoured; a longer one is shortened to this."""
    max_redirects: int = 5
    max_tag_pages: int = 100
    """Pages of ``Link: rel="next"`` followed before a tag listing is refused as endless."""


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class BearerToken:
    """A registry token, when it is due (by the session's clock), and the challenge it answers."""

    value: str
    expires_at: float
    challenge: Challenge = field(repr=False)

    def __repr__(self) -> str:
        return f"BearerToken(***, expires_at={self.expires_at})"


class RegistryError(Exception):
    """A registry request failed; the message names registry, operation and what went wrong."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status of the failed answer; None when no answer came."""
        self.code = code
        """The first OCI error code of the answer (``MANIFEST_UNKNOWN``...), if any."""


@dataclass(frozen=True)
class Answer:
    """A registry's answer: the response (body already read and closed) and its bounded body."""

    response: httpx.Response
    body: bytes

    @property
    def status(self) -> int:
        """The HTTP status code."""
        return self.response.status_code

    @property
    def headers(self) -> httpx.Headers:
        """The response headers."""
        return self.response.headers


class RegistrySession:
    """Authenticated, bounded HTTP requests to one registry (see the module docstring)."""

    def __init__(
        self,
        registry: str,
        credentials: Credentials,
        *,
        plain_http: bool = False,
        limits: Limits | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``plain_http`` allows HTTP beyond loopback: only for a throwaway registry service.

        ``clock`` (seconds, monotonic) tells when a bearer token is due for renewal.
        """
        self.registry = normalize_registry(registry)
        self.credentials = credentials
        self.limits = limits or DEFAULT_LIMITS
        loopback = is_loopback_ip(host_of(self.registry))
        if plain_http and not loopback and credentials.given:
            raise ValueError(
                "credentials are never sent over plain HTTP, except to a loopback IP address"
            )
        scheme = "http" if plain_http or loopback else "https"
        self.base_url = httpx.URL(f"{scheme}://{self.registry}")
        self._use_basic = False
        self._clock = clock
        self._tokens: dict[str, BearerToken] = {}
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.limits.read_timeout),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    def __repr__(self) -> str:
        return f"RegistrySession(base_url={str(self.base_url)!r}, {self.credentials!r})"

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    @contextmanager
    def deadline(self, operation: str) -> Iterator[None]:
        """Give the operation inside at most ``limits.deadline`` seconds, then a RegistryError."""
        try:
            with anyio.fail_after(self.limits.deadline):
                yield
        except TimeoutError:
            raise self.error(
                operation, f"no complete answer within {self.limits.deadline:g} s"
            ) from None

    async def request(
        self,
        method: str,
        url: httpx.URL,
        *,
        repository: str,
        actions: str,
        operation: str,
        ok: frozenset[int],
        body: BodyKind,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
    ) -> Answer:
        """Send one request within the operation's deadline; a status outside ``ok`` raises."""
        call = _Call(
            method,
            url,
            f"repository:{repository}:{actions}",
            operation,
            ok,
            body,
            headers=dict(headers or {}),
            content=content,
            follow_redirects=follow_redirects,
        )
        with self.deadline(operation):
            answer = await self._authorized(call)
            for pause in self.limits.retry_pauses if idempotent else ():
                if answer.status not in RETRIED_STATUSES or answer.status in ok:
                    break
                wait = self._retry_wait(answer, pause)
                if anyio.current_time() + wait >= anyio.current_effective_deadline():
                    break  # nothing is retried after the deadline
                await anyio.sleep(wait)
                answer = await self._authorized(call)
        if answer.status not in ok:
            raise self.status_error(answer, operation, writing=_writes(call.scope))
        return answer

    def _retry_wait(self, answer: Answer, pause: float) -> float:
        """Seconds before a repeat: the answer's ``Retry-After`` (capped), else ``pause``."""
        header = answer.headers.get("retry-after", "").strip()
        if not header:
            return pause
        if header.isdigit():
            seconds = float(header)
        else:
            try:
                when = email.utils.parsedate_to_datetime(header)
                seconds = (when - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError, OverflowError):
                return pause
        return min(max(seconds, 0.0), self.limits.max_retry_after)

    async def _authorized(self, call: _Call) -> Answer:
        """Send ``call``; after a 401 with a challenge it can answer, send it once more.

        A bearer token of the call's scope near its end is renewed first, from the challenge
        that bought it: a registry that expires tokens never has to refuse one mid-release.
        """
        held = self._tokens.get(call.scope)
        if held is not None and held.expires_at - self._clock() < TOKEN_RENEWAL_MARGIN:
            self._tokens[call.scope] = await self._fetch_token(held.challenge, call)
        sent_basic = self._use_basic  # another request may turn basic on while this one runs
        answer = await self._following(call)
        if answer.status == 401 and await self._answer_challenge(answer, call, sent_basic):
            answer = await self._following(call)
        return answer

    async def _following(self, call: _Call) -> Answer:
        """Send ``call``, following redirects if it asks to, up to ``limits.max_redirects``."""
        url = call.url
        for _ in range(self.limits.max_redirects + 1):
            answer = await self._send(call, url, with_auth=True)
            if not call.follow_redirects or answer.status not in REDIRECT_STATUSES:
                return answer
            url = self._redirect_target(answer, url, call.operation)
        raise self.error(call.operation, f"more than {self.limits.max_redirects} redirects")

    def _redirect_target(self, answer: Answer, url: httpx.URL, operation: str) -> httpx.URL:
        """The URL a redirect points at, if it is well-formed and safe to follow."""
        location = answer.headers.get("location", "")
        try:
            target = url.join(location)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise self.error(operation, "malformed redirect Location", answer.status) from None
        if not location or not target.host or target.scheme not in ("http", "https"):
            raise self.error(operation, "redirect without a usable Location", answer.status)
        if target.scheme == "http" and not (
            is_loopback_ip(target.host) or self.same_origin(target)
        ):
            raise self.error(
                operation,
                f"redirect to plain HTTP ({printable(target.host)}) refused; accepted: https",
                answer.status,
            )
        return target

    async def _send(self, call: _Call, url: httpx.URL, *, with_auth: bool) -> Answer:
        """One HTTP exchange; the body read up to its kind's limit; network errors raise."""
        headers = dict(call.headers)
        if with_auth and self.same_origin(url):
            headers.update(self._auth_headers(call.scope))
        try:
            async with self._http.stream(
                call.method, url, headers=headers, content=call.content
            ) as response:
                body = await self._read_body(response, call)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self.error(call.operation, f"no answer ({type(exc).__name__}: {exc})") from None
        return Answer(response=response, body=body)

    async def _read_body(self, response: httpx.Response, call: _Call) -> bytes:
        """The body of ``response``, refused past the limit of its kind (errors are cut)."""
        if call.method == "HEAD":
            return b""
        expected = response.status_code in call.ok
        kind = call.body if expected else ERROR_BODY
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            if not expected:
                return b""
            raise self.error(
                call.operation,
                f"answer is compressed ({printable(encoding)}) although none was asked for",
                response.status_code,
            )
        declared = response.headers.get("content-length", "")
        if expected and declared.isdigit() and int(declared) > kind.limit:
            raise self._too_big(call.operation, kind, response.status_code)
        body = bytearray()
        async for chunk in _raw_chunks(response):
            body += chunk
            if len(body) > kind.limit:
                if not expected:
                    return bytes(body[: kind.limit])
                raise self._too_big(call.operation, kind, response.status_code)
        return bytes(body)

    def _too_big(self, operation: str, kind: BodyKind, status: int) -> RegistryError:
        """The error for an answer over the limit of its kind."""
        return self.error(
            operation, f"answer is over {kind.limit} bytes, the limit for a {kind.name}", status
        )

    def _auth_headers(self, scope: str) -> dict[str, str]:
        """The Authorization header for ``scope``: a cached token, else basic if it was asked."""
        token = self._tokens.get(scope)
        if token is not None:
            return {"Authorization": f"Bearer {token.value}"}
        if self._use_basic:
            return {"Authorization": self.credentials.basic_header()}
        return {}

    async def _answer_challenge(self, answer: Answer, call: _Call, sent_basic: bool) -> bool:
        """Prepare credentials after a 401; False if there is nothing new to try.

        ``sent_basic``: whether the refused request already carried basic credentials.
        """
        challenge = parse_challenge(answer.headers.get("www-authenticate", ""))
        if challenge.scheme == "bearer" and "realm" in challenge.params:
            self._tokens[call.scope] = await self._fetch_token(challenge, call)
            return True
        if challenge.scheme == "basic" and self.credentials.given and not sent_basic:
            self._use_basic = True
            return True
        return False  # no usable challenge, or basic credentials were already refused

    async def _fetch_token(self, challenge: Challenge, call: _Call) -> BearerToken:
        """A bearer token for the call's scope from the challenge's realm, and its end."""
        operation = f"{call.operation}: token request"
        try:
            request = token_request(challenge, call.scope, self.base_url, self.credentials)
        except ValueError as exc:
            raise self.error(operation, str(exc)) from None
        operation = f"{operation} to {printable(request.url.host)}"
        token_call = _Call(
            "GET", request.url, call.scope, operation, frozenset({200}), TOKEN_BODY, request.headers
        )
        url = request.url.copy_merge_params(request.params)
        asked_at = self._clock()  # the token's lifetime counts from before the answer
        answer = await self._send(token_call, url, with_auth=False)
        if answer.status != 200:
            raise self.status_error(answer, operation, writing=_writes(call.scope))
        try:
            document = parse_json_object(answer.body, what="token answer")
            token = token_of(document)
        except ValueError as exc:
            raise self.error(operation, str(exc), answer.status) from None
        self.credentials.remember_token(token)
        return BearerToken(token, asked_at + token_lifetime(document), challenge)

    def same_origin(self, url: httpx.URL) -> bool:
        """Whether ``url`` is on this registry (credentials go nowhere else)."""
        base = self.base_url
        return (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)

    def error_code_and_detail(self, answer: Answer) -> tuple[str | None, str]:
        """The first OCI error code of an error answer and a short, safe text of all of them."""
        try:
            errors = parse_json_object(answer.body, what="error answer").get("errors")
        except ValueError:
            errors = None
        if not isinstance(errors, list) or not all(isinstance(e, dict) for e in errors):
            return None, self.server_text(answer.body.decode("utf-8", "replace").strip())
        parts = [f"{e.get('code', '?')}: {e.get('message', '')}".strip() for e in errors]
        code = self.server_text(str(errors[0].get("code")), 64) if errors else None
        return code, self.server_text("; ".join(parts))

    def server_text(self, text: str, limit: int = MAX_ERROR_DETAIL) -> str:
        """Server ``text`` safe to show: scrubbed of secrets, escaped, then shortened."""
        scrub = self.credentials.scrub
        safe = scrub(printable(scrub(text)))
        return safe if len(safe) <= limit else safe[: limit - 3] + "..."

    def status_error(
        self, answer: Answer, operation: str, *, writing: bool = False
    ) -> RegistryError:
        """A RegistryError for an unexpected status, with the registry's error codes and a hint.

        ``writing``: the request (or its token request) asked for push access; a refusal then
        says which access to check.
        """
        status = answer.status
        code, detail = self.error_code_and_detail(answer)
        reason = self.server_text(answer.response.reason_phrase.lower(), 60) or "error"
        hint = _HINTS.get(status)
        if status == 401 and not self.credentials.given:
            hint = _HINT_NO_CREDENTIALS
        elif status in (401, 403) and writing:
            hint = f"{_HINTS[401]}; {WRITE_ACCESS_HINT}" if status == 401 else WRITE_ACCESS_HINT
        text = f"{status} {reason}"
        if hint:
            text += f" ({hint})"
        if detail:
            text += f": {detail}"
        return self.error(operation, text, status, code)

    def error(
        self, operation: str, what: str, status: int | None = None, code: str | None = None
    ) -> RegistryError:
        """A RegistryError ``registry R: OPERATION failed: WHAT``, one line, with no secret."""
        message = f"registry {self.registry}: {operation} failed: {what}"
        return RegistryError(self.credentials.scrub(printable(message)), status=status, code=code)


def _writes(scope: str) -> bool:
    """Whether a ``repository:NAME:ACTIONS`` scope asks for push access."""
    return "push" in scope.rsplit(":", 1)[-1].split(",")


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The undecoded body in chunks as they arrive (all at once if a transport held it)."""
    try:
        yield response.content  # an in-memory answer (a test transport) is already read
    except httpx.ResponseNotRead:
        async for chunk in response.aiter_raw():
            yield chunk


@dataclass
class _Call:
    """One request as the caller asked for it, sent again on retries and after challenges."""

    method: str
    url: httpx.URL
    scope: str
    operation: str
    ok: frozenset[int]
    body: BodyKind
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    follow_redirects: bool = False
