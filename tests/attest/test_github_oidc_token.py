"""GitHub's OIDC token exchange: audience ``sigstore``, the bearer request token, and refusals.

Against a real HTTP server on loopback (``tests/support/hostile_registry.py`` serves any
handler): the request carries the job's request token as a bearer and asks for audience
``sigstore``; a refusal is named by its status, and the request token never appears in an error,
even when the server echoes it back.
"""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from pipeline.attest import signing
from pipeline.attest.errors import AttestationError
from pipeline.attest.signing import github_oidc_token

from tests.support.hostile_registry import Handler, HostileRegistry, Reply, Request

REQUEST_TOKEN = "ghs-request-token-0123456789abcdef"
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJzaWdzdG9yZSJ9.c2lnbmF0dXJl"


def answer(status: int, document: object) -> Handler:
    """A handler answering every request with ``status`` and JSON ``document``."""

    def handle(request: Request, reply: Reply) -> None:
        reply.json(status, document)

    return handle


def test_the_token_is_asked_for_audience_sigstore_with_the_bearer_request_token() -> None:
    with HostileRegistry(answer(200, {"count": 1, "value": ID_TOKEN})) as server:
        url = f"http://{server.host}/_apis/distributedtask/token?api-version=2.0"

        assert github_oidc_token(url, REQUEST_TOKEN) == ID_TOKEN

    (request,) = server.requests
    assert request.method == "GET"
    assert request.path == "/_apis/distributedtask/token"
    assert parse_qs(request.query) == {"api-version": ["2.0"], "audience": ["sigstore"]}
    assert request.headers["authorization"] == f"bearer {REQUEST_TOKEN}"


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_refusal_is_named_by_status_without_the_request_token(status: int) -> None:
    echoed = {"message": f"token {REQUEST_TOKEN} may not ask for an ID token"}
    with (
        HostileRegistry(answer(status, echoed)) as server,
        pytest.raises(AttestationError) as refused,
    ):
        github_oidc_token(f"http://{server.host}/token", REQUEST_TOKEN)

    message = str(refused.value)
    assert f"answered {status}" in message
    assert f"to {server.address}" in message
    assert REQUEST_TOKEN not in message
    assert "may not ask for an ID token" in message  # the server's words, scrubbed
    assert ("id-token: write" in message) == (status in (401, 403))


@pytest.mark.parametrize(
    "document", [{"count": 0}, {"value": ""}, {"value": 7}, ["value"], {"value": REQUEST_TOKEN}]
)
def test_an_answer_without_a_token_is_refused(document: object) -> None:
    with (
        HostileRegistry(answer(200, document)) as server,
        pytest.raises(AttestationError, match="the answer holds no token") as refused,
    ):
        github_oidc_token(f"http://{server.host}/token", REQUEST_TOKEN)

    assert REQUEST_TOKEN not in str(refused.value)


def test_a_server_error_is_asked_again_then_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signing, "OIDC_PAUSE", 0.0)
    with (
        HostileRegistry(answer(503, {"message": "busy"})) as server,
        pytest.raises(AttestationError, match=r"answered 503: .*busy"),
    ):
        github_oidc_token(f"http://{server.host}/token", REQUEST_TOKEN)

    assert len(server.requests) == signing.OIDC_ATTEMPTS


def test_an_answer_over_the_limit_is_refused() -> None:
    with (
        HostileRegistry(answer(200, {"value": "x" * signing.MAX_OIDC_ANSWER})) as server,
        pytest.raises(AttestationError, match="answer over 65536 bytes"),
    ):
        github_oidc_token(f"http://{server.host}/token", REQUEST_TOKEN)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://token.actions.example/token", "scheme 'http' refused; accepted: https"),
        ("ftp://127.0.0.1/token", "scheme 'ftp' refused"),
    ],
)
def test_the_request_token_goes_only_over_https_or_to_loopback(url: str, message: str) -> None:
    with pytest.raises(AttestationError, match=message) as refused:
        github_oidc_token(url, REQUEST_TOKEN)

    assert REQUEST_TOKEN not in str(refused.value)


def test_no_request_token_says_which_permission_is_missing() -> None:
    with pytest.raises(AttestationError, match="id-token: write"):
        github_oidc_token("https://token.actions.example/token", "")


def test_no_answer_is_named_without_the_request_token() -> None:
    with HostileRegistry(answer(200, {})) as server:
        closed = f"http://{server.host}/token"
    with pytest.raises(AttestationError, match="got no answer") as refused:
        github_oidc_token(closed, REQUEST_TOKEN)

    assert REQUEST_TOKEN not in str(refused.value)
