"""Registry credentials go to a token realm only at the registry's own origin.

A realm on a look-alike host (``notghcr.io`` for ``ghcr.io``: the host merely ends with the
registry's), a subdomain, another port or another scheme is refused when credentials are given,
naming what differs; anonymously, the token is still asked for (it carries no secret). Then the
client: a look-alike realm on 127.0.0.1 receives no request at all.
"""

from __future__ import annotations

import re

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline.oci.auth import Credentials, parse_challenge, token_request
from pipeline.oci.client import Limits, RegistryClient, RegistryError

from tests.support.hostile_registry import HostileRegistry, status

pytestmark = pytest.mark.anyio

GHCR = httpx.URL("https://ghcr.io")
SCOPE = "repository:steinbeck/qm-nmr-calc-api:pull,push"
ACCEPTED = "credentials are sent to the registry's own origin only (its scheme, host and port)"
FAST = Limits(read_timeout=1.0, deadline=2.0, retry_pauses=(0.05, 0.05), max_retry_after=0.3)


def challenge(realm: str) -> str:
    """A Bearer challenge naming ``realm``."""
    return f'Bearer realm="{realm}",service="ghcr.io"'


@pytest.mark.parametrize(
    ("registry", "realm", "differs"),
    [
        (GHCR, "https://notghcr.io/token", "host"),
        (GHCR, "https://evil-ghcr.io/token", "host"),
        (GHCR, "https://auth.ghcr.io/token", "host"),
        (GHCR, "https://ghcr.io.evil.example/token", "host"),
        (GHCR, "https://ghcr.io:8443/token", "port"),
        (httpx.URL("https://127.0.0.1:5000"), "http://127.0.0.1:5000/token", "scheme"),
        (httpx.URL("https://127.0.0.1:5000"), "https://127.0.0.1:5001/token", "port"),
        (httpx.URL("http://127.0.0.1:5000"), "https://127.0.0.1:5000/token", "scheme"),
        (httpx.URL("https://127.0.0.1:5000"), "https://127.0.0.2:5000/token", "host"),
    ],
    ids=[
        "look-alike-prefix",
        "look-alike-dash",
        "subdomain",
        "registry-as-subdomain",
        "other-port",
        "plain-http-on-loopback",
        "other-port-on-loopback",
        "https-beside-plain-http",
        "other-loopback-address",
    ],
)
def test_a_realm_at_another_origin_gets_no_credentials(
    registry: httpx.URL, realm: str, differs: str
) -> None:
    parsed = parse_challenge(challenge(realm))

    with pytest.raises(ValueError, match=re.escape(f"on another {differs} than the registry; ")):
        token_request(parsed, SCOPE, registry, Credentials("bot", "pw"))
    anonymous = token_request(parsed, SCOPE, registry, Credentials(None, None))
    assert anonymous.headers == {}  # a token without secrets may still be asked for


def test_the_refusal_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="notghcr") as refused:
        token_request(
            parse_challenge(challenge("https://notghcr.io/token?account=bot")),
            SCOPE,
            GHCR,
            Credentials("bot", "pw"),
        )

    assert str(refused.value) == (
        f"token realm https://notghcr.io/token is on another host than the registry; {ACCEPTED}"
    )


@pytest.mark.parametrize(
    "realm",
    ["https://ghcr.io/token", "https://GHCR.io/token", "https://ghcr.io:443/token?scope=x"],
)
def test_a_realm_at_the_registry_origin_gets_the_credentials(realm: str) -> None:
    request = token_request(parse_challenge(challenge(realm)), SCOPE, GHCR, Credentials("u", "pw"))

    assert request.headers == {"Authorization": "Basic dTpwdw=="}


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(label=LABEL, separator=st.sampled_from(["", "-", "."]), before=st.booleans())
def test_no_host_that_merely_contains_the_registry_host_gets_credentials(
    label: str, separator: str, before: bool
) -> None:
    """``<label><sep>ghcr.io`` and ``ghcr.io<sep><label>``: never the registry's own host."""
    host = f"{label}{separator}ghcr.io" if before else f"ghcr.io{separator}{label}"
    with pytest.raises(ValueError, match="on another host than the registry"):
        token_request(
            parse_challenge(challenge(f"https://{host}/token")),
            SCOPE,
            GHCR,
            Credentials("bot", "pw"),
        )


async def test_the_client_sends_nothing_to_a_look_alike_realm() -> None:
    """The registry on 127.0.0.1 names a realm at the same host but another port (a look-alike
    service on the registry's machine): the client refuses before any request reaches it."""
    with HostileRegistry(status(200, b'{"token":"t"}')) as realm:
        header = challenge(f"http://{realm.host}/token")
        with HostileRegistry(status(401, b"", {"WWW-Authenticate": header})) as server:
            async with RegistryClient(
                server.host, username="bot", password="pw", limits=FAST
            ) as client:
                with pytest.raises(RegistryError, match="on another port than the registry"):
                    await client.list_tags("steinbeck/qm-nmr-calc-api")
        assert realm.requests == []
