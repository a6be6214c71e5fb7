"""Registry authentication: what is asked for, what is sent where, and how secrets are scrubbed.

``pipeline.oci.auth`` decides without I/O: what a ``WWW-Authenticate`` challenge asks for, which
token request may be made (and with which credentials), what a token answer holds, and how every
echoed form of a secret is scrubbed from text; these decisions are checked word for word by
calling the functions directly. Then the client against misbehaving registries on 127.0.0.1
(``tests/support/hostile_registry.py``): every echoed form of the password scrubbed, even where
the text is cut, and credentials never sent to another host, another origin or over plain HTTP.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline.oci.auth import (
    Challenge,
    Credentials,
    TokenRequest,
    parse_challenge,
    token_of,
    token_request,
)
from pipeline.oci.client import Limits, RegistryClient, RegistryError
from pipeline.oci.transport import MAX_ERROR_DETAIL

from tests.support.hostile_registry import (
    HostileRegistry,
    Reply,
    Request,
    status,
)
from tests.support.oci_images import sha256_digest

pytestmark = pytest.mark.anyio

REGISTRY = httpx.URL("https://reg.example")
REALM = "https://reg.example/token"
ASKED = "repository:team/app:pull,push"

# A password with a space, a non-ASCII letter, a quote, a '<' and a backslash: each echoed form
# below (raw, URL-quoted in both cases, form-quoted, JSON with and without ASCII escapes,
# Python repr, HTML, base64) is a different text.
ODD_PASSWORD = 'p ä"<\\'
ODD_PASSWORD_FORMS = [
    'p ä"<\\',
    "p%20%C3%A4%22%3C%5C",
    "p%20%c3%a4%22%3c%5c",
    "p+%C3%A4%22%3C%5C",
    'p \\u00e4\\"<\\\\',
    'p ä\\"<\\\\',
    'p ä"<\\\\',
    "p ä&quot;&lt;\\",
    "cCDDpCI8XA==",
]


def test_a_challenge_with_spaces_after_commas_keeps_its_scheme_and_every_parameter() -> None:
    """The scheme is the first word; parameters separated by ', ' are all read."""
    challenge = parse_challenge(
        f'Bearer realm="{REALM}", service="reg.example", scope="repository:team/app:pull"'
    )
    assert challenge == Challenge(
        scheme="bearer",
        params={
            "realm": REALM,
            "service": "reg.example",
            "scope": "repository:team/app:pull",
        },
    )


def test_a_quoted_challenge_parameter_is_unescaped() -> None:
    r"""Inside quotes, ``\"`` is a quote and ``\\`` a backslash, as HTTP quoted-strings say."""
    challenge = parse_challenge(
        'Bearer realm="https://reg.example/token",error_description="say \\"hi\\" \\\\ bye"'
    )
    assert challenge.params == {"realm": REALM, "error_description": 'say "hi" \\ bye'}


@pytest.mark.parametrize("form", ODD_PASSWORD_FORMS)
def test_every_echoed_form_of_the_password_is_scrubbed_whole(form: str) -> None:
    """A server echoing the password in any encoding has the whole echo replaced by ***."""
    credentials = Credentials("user", ODD_PASSWORD)
    assert credentials.scrub(f"denied: {form}.") == "denied: ***."


@pytest.mark.parametrize(
    ("username", "text", "scrubbed"),
    [
        ("a", "login a:pw refused", "login *** refused"),
        ("u", "login u:pw refused", "login *** refused"),
        ("", "login :pw refused", "login *** refused"),
        ("u", "Authorization: Basic dTpwdw== refused", "Authorization: Basic *** refused"),
        ("u", "Authorization=Basic%20dTpwdw%3D%3D", "Authorization=Basic%20***"),
    ],
)
def test_the_user_password_pair_and_its_basic_value_are_scrubbed_whole(
    username: str, text: str, scrubbed: str
) -> None:
    """``user:password`` is scrubbed before the password in it; the basic value, not its scheme."""
    assert Credentials(username, "pw").scrub(text) == scrubbed


def test_secrets_are_listed_longest_first() -> None:
    """So that scrubbing a shorter secret never leaves part of a longer one behind."""
    secrets = Credentials("a", "pw").secrets()
    assert [len(secret) for secret in secrets] == sorted(map(len, secrets), reverse=True)
    assert secrets.index("a:pw") < secrets.index("pw")


@pytest.mark.parametrize(
    ("username", "password"), [("u", "pw"), (None, None)], ids=["with-password", "anonymous"]
)
def test_a_remembered_token_is_scrubbed(username: str | None, password: str | None) -> None:
    """A token obtained with the credentials is a secret too, with or without a password."""
    credentials = Credentials(username, password)
    credentials.remember_token("tok-123")
    assert credentials.scrub("bearer tok-123 refused") == "bearer *** refused"


@pytest.mark.parametrize(
    ("credentials", "shown"),
    [
        (Credentials("u", "pw"), "Credentials(username='u', password=<set>)"),
        (Credentials(None, None), "Credentials(username=None, password=None)"),
    ],
)
def test_credentials_repr_says_only_whether_a_password_is_set(
    credentials: Credentials, shown: str
) -> None:
    assert repr(credentials) == shown


@pytest.mark.parametrize(
    ("username", "password", "header"),
    [("u", "pw", "Basic dTpwdw=="), ("", "pw", "Basic OnB3"), ("u", "", "Basic dTo=")],
)
def test_the_basic_header_encodes_user_colon_password(
    username: str, password: str, header: str
) -> None:
    """An empty user or password is encoded as empty (``:pw``, ``u:``), not replaced."""
    assert Credentials(username, password).basic_header() == header


@pytest.mark.parametrize(
    ("header", "credentials", "params", "headers"),
    [
        (
            f'Bearer realm="{REALM}",service="reg.example",scope="repository:team/app:pull"',
            Credentials("u", "pw"),
            [
                ("service", "reg.example"),
                ("scope", ASKED),
                ("scope", "repository:team/app:pull"),
            ],
            {"Authorization": "Basic dTpwdw=="},
        ),
        (
            f'Bearer realm="{REALM}",service="reg.example",scope="{ASKED}"',
            Credentials(None, None),
            [("service", "reg.example"), ("scope", ASKED)],
            {},
        ),
        (
            f'Bearer realm="{REALM}",service="reg.example"',
            Credentials("", "pw"),
            [("service", "reg.example"), ("scope", ASKED)],
            {"Authorization": "Basic OnB3"},
        ),
        (
            f'Bearer realm="{REALM}",scope="repository:team/app:pull"',
            Credentials("u", ""),
            [("scope", ASKED), ("scope", "repository:team/app:pull")],
            {"Authorization": "Basic dTo="},
        ),
    ],
    ids=["other-scope", "same-scope-anonymous", "no-scope", "no-service"],
)
def test_the_token_request_asks_service_then_scopes_with_basic_credentials(
    header: str,
    credentials: Credentials,
    params: list[tuple[str, str | int | float | bool | None]],
    headers: dict[str, str],
) -> None:
    """The service first, the asked scope, the challenge's scope if it differs; basic auth."""
    request = token_request(parse_challenge(header), ASKED, REGISTRY, credentials)
    assert request == TokenRequest(url=httpx.URL(REALM), params=params, headers=headers)


@pytest.mark.parametrize(
    ("header", "credentials", "message"),
    [
        (
            'Bearer service="reg.example"',
            Credentials(None, None),
            "token realm is not an absolute URL; accepted: https://HOST/PATH",
        ),
        (
            'Bearer realm="//reg.example/token"',
            Credentials(None, None),
            "token realm is not an absolute URL; accepted: https://HOST/PATH",
        ),
        (
            'Bearer realm="https://[::1/token"',
            Credentials(None, None),
            "token realm is not a URL (InvalidURL)",
        ),
        (
            'Bearer realm="http://reg.example/token?account=u"',
            Credentials(None, None),
            "token realm http://reg.example/token is not HTTPS; accepted: https, or http to a"
            " loopback address",
        ),
        (
            'Bearer realm="https://auth.example/token?account=u"',
            Credentials("u", "pw"),
            "token realm https://auth.example/token is on another host than the registry;"
            " credentials are sent to the registry's own origin only (its scheme, host and port)",
        ),
    ],
    ids=["no-realm", "no-scheme", "not-a-url", "plain-http", "other-host-with-credentials"],
)
def test_an_unsafe_token_realm_is_refused_with_what_is_accepted(
    header: str, credentials: Credentials, message: str
) -> None:
    """The realm is shown without its query; credentials never go to another host."""
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        token_request(parse_challenge(header), ASKED, REGISTRY, credentials)


@pytest.mark.parametrize(
    ("answer", "token"),
    [({"token": "abc.def"}, "abc.def"), ({"token": "", "access_token": "xyz"}, "xyz")],
)
def test_the_token_of_an_answer(answer: dict[str, object], token: str) -> None:
    """``token``, else ``access_token``."""
    assert token_of(answer) == token


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"token": 5},
        {"token": "", "access_token": ""},
        {"token": "tök"},
        {"token": "ab\x00"},
    ],
    ids=["none", "a-number", "empty", "non-ascii", "unprintable"],
)
def test_an_answer_without_a_printable_ascii_token_is_refused(answer: dict[str, object]) -> None:
    message = "answer has no 'token' or 'access_token' of printable ASCII"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        token_of(answer)


OWNER = "hostile"
REPO = f"{OWNER}/qm-nmr-calc-api"
FAST = Limits(read_timeout=1.0, deadline=2.0, retry_pauses=(0.05, 0.05), max_retry_after=0.3)
PASSWORD = 'pa ss/wörd+"1'
DIGEST = sha256_digest(b"x")


# --- credentials ------------------------------------------------------------------------------


def echoes(password: str) -> list[str]:
    """The forms in which a server might echo a password back."""
    basic = base64.b64encode(f"bot:{password}".encode()).decode()
    return [
        password,
        urllib.parse.quote(password, safe=""),
        json.dumps(password)[1:-1],
        basic,
        f"Basic {basic}",
    ]


async def test_every_echoed_form_of_the_password_is_scrubbed() -> None:
    def handle(request: Request, reply: Reply) -> None:
        if "authorization" not in request.headers:
            reply.send(401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
            return
        echoed = " | ".join([*echoes(PASSWORD), request.headers["authorization"]])
        reply.json(400, {"errors": [{"code": "DENIED", "message": echoed}]})

    with HostileRegistry(handle) as server:
        async with RegistryClient(
            server.host, username="bot", password=PASSWORD, limits=FAST
        ) as client:
            with pytest.raises(RegistryError) as caught:
                await client.get_manifest(REPO, "2.4.0")
            shown = str(caught.value) + repr(caught.value) + repr(client)
    assert "DENIED" in shown
    for form in echoes(PASSWORD):
        assert form not in shown


@settings(max_examples=200, deadline=None)
@given(
    password=st.text(min_size=4, max_size=40).filter(lambda p: p.strip() == p and p),
    prefix=st.text(max_size=600),
)
def test_scrubbing_comes_before_shortening(password: str, prefix: str) -> None:
    """Whatever the text around it, no echoed form survives, even where the text is cut."""
    client = RegistryClient("ghcr.io", username="bot", password=password)
    session = client.session
    for form in echoes(password):
        shown = session.server_text(prefix + form + prefix)
        assert form not in shown or form in session.server_text(prefix + prefix)


STRADDLING_SECRET = "Zq7vKw9XbJ4mTn2R"
"""A password sharing no character with the filler around it, so any part of it shows."""


@pytest.mark.parametrize("inside", range(1, len(STRADDLING_SECRET)))
def test_a_secret_straddling_the_cut_leaves_no_prefix_behind(inside: int) -> None:
    """The cut falls ``inside`` characters into the secret: scrubbed first, none of it shows."""
    session = RegistryClient("ghcr.io", username="bot", password=STRADDLING_SECRET).session
    kept = MAX_ERROR_DETAIL - len("...")
    text = "." * (kept - inside) + STRADDLING_SECRET + "." * 50
    shown = session.server_text(text)
    assert len(shown) <= MAX_ERROR_DETAIL
    assert not any(char in shown for char in STRADDLING_SECRET)


async def test_credentials_never_go_to_a_token_realm_on_another_host() -> None:
    with HostileRegistry(status(200, b'{"token":"t"}'), address="127.0.0.2") as realm:
        challenge = f'Bearer realm="http://{realm.host}/token",service="s"'
        with HostileRegistry(status(401, b"", {"WWW-Authenticate": challenge})) as server:
            async with RegistryClient(
                server.host, username="bot", password=PASSWORD, limits=FAST
            ) as client:
                with pytest.raises(
                    RegistryError, match=r"on another host (and port )?than the registry"
                ):
                    await client.list_tags(REPO)
        assert realm.requests == []


@pytest.mark.parametrize(
    ("realm", "refused"),
    [
        ("http://127.attacker.example/token", "not HTTPS"),
        ("https://[::1/token", "not a URL"),
        ("/token", "not an absolute URL"),
    ],
)
async def test_a_bad_token_realm_is_a_registry_error(realm: str, refused: str) -> None:
    challenge = f'Bearer realm="{realm}",service="s"'
    with HostileRegistry(status(401, b"", {"WWW-Authenticate": challenge})) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError, match=refused):
                await client.list_tags(REPO)


async def test_a_redirect_to_another_origin_carries_no_credentials() -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    with HostileRegistry(status(200, config), address="127.0.0.2") as cdn:

        def handle(request: Request, reply: Reply) -> None:
            if "authorization" not in request.headers:
                reply.send(401, b"", {"WWW-Authenticate": 'Basic realm="r"'})
            else:
                reply.send(307, b"", {"Location": f"http://{cdn.host}/blob"})

        with HostileRegistry(handle) as server:
            async with RegistryClient(
                server.host, username="bot", password=PASSWORD, limits=FAST
            ) as client:
                assert await client.get_blob(REPO, sha256_digest(config)) == config
        assert server.requests[-1].headers["authorization"].startswith("Basic ")
    assert [r.headers.get("authorization") for r in cdn.requests] == [None]


@pytest.mark.parametrize("location", ["http://[::1/x", "https://", "ftp://example.com/x"])
async def test_a_malformed_redirect_is_a_registry_error(location: str) -> None:
    with HostileRegistry(status(307, b"", {"Location": location})) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError, match=r"(?i)redirect|location"):
                await client.get_blob(REPO, DIGEST)


def test_no_credentials_over_plain_http_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="never sent over plain HTTP"):
        RegistryClient("registry.example:5000", username="u", password="p", plain_http=True)
    assert "p'" not in repr(RegistryClient("ghcr.io", username="u", password="p"))
