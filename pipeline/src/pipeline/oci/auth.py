"""Registry authentication: credentials that never leak, challenges, and the token request.

Registries answer 401 with a ``WWW-Authenticate`` challenge: ``Basic`` (e.g. an htpasswd
registry) or ``Bearer`` with a token realm (GHCR, Docker Hub). This module holds the decisions,
without any I/O: what a challenge asks for, where a token may be requested and with which
credentials, what a token answer holds, and how every form of a secret is scrubbed from text.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from pipeline.oci.names import is_loopback_ip
from pipeline.oci.text import printable

_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^,\s]*)')
SCRUBBED = "***"


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class TokenRequest:
    """Where to ask for a bearer token, and with which headers."""

    url: httpx.URL
    params: list[tuple[str, str | int | float | bool | None]]
    headers: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """The scheme and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for key, value in _CHALLENGE_PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return Challenge(scheme=scheme.lower(), params=params)


def echoed_forms(secret: str) -> set[str]:
    """Every form in which a server could echo ``secret`` back: raw, URL, JSON, HTML, escaped."""
    quoted = urllib.parse.quote(secret, safe="")
    forms = {
        secret,
        quoted,
        quoted.lower(),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        html.escape(secret),
        printable(secret),
        base64.b64encode(secret.encode()).decode("ascii"),
    }
    return {form for form in forms if form}


@dataclass
class Credentials:
    """A user and password, and the tokens obtained with them; ``repr`` shows no secret."""

    username: str | None
    password: str | None = field(repr=False)
    _tokens: set[str] = field(default_factory=set, repr=False)

    def __repr__(self) -> str:
        password = "<set>" if self.password is not None else None
        return f"Credentials(username={self.username!r}, password={password})"

    @property
    def given(self) -> bool:
        """Whether a user and password were given (else access is anonymous)."""
        return self.username is not None and self.password is not None

    def basic_header(self) -> str:
        """The HTTP basic Authorization value of the user and password."""
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"

    def remember_token(self, token: str) -> None:
        """Treat ``token`` as a secret from now on."""
        self._tokens.add(token)

    def secrets(self) -> list[str]:
        """Every secret form to scrub, longest first (so no part of a longer one survives)."""
        raw: set[str] = set(self._tokens)
        if self.password:
            raw |= {self.password, f"{self.username or ''}:{self.password}"}
            raw.add(self.basic_header().removeprefix("Basic "))
        forms = set().union(*(echoed_forms(secret) for secret in raw))
        return sorted(forms, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, SCRUBBED)
        return text


def token_request(
    challenge: Challenge, scope: str, registry_url: httpx.URL, credentials: Credentials
) -> TokenRequest:
    """The token request a Bearer challenge asks for; ValueError if it cannot be made safely.

    The realm must be HTTPS (plain HTTP only to a loopback IP address). The user and password go
    to the realm only when it is at the registry's own origin (scheme, host and port all the
    registry's): never to another host, a look-alike or a subdomain, another port or scheme.
    """
    try:
        realm = httpx.URL(challenge.params.get("realm", ""))
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValueError(f"token realm is not a URL ({type(exc).__name__})") from None
    if not realm.is_absolute_url or not realm.host:
        raise ValueError("token realm is not an absolute URL; accepted: https://HOST/PATH")
    shown = printable(str(realm.copy_with(query=None)))
    if realm.scheme != "https" and not (realm.scheme == "http" and is_loopback_ip(realm.host)):
        raise ValueError(
            f"token realm {shown} is not HTTPS; accepted: https, or http to a loopback address"
        )
    headers = {}
    if credentials.given:
        differs = other_origin(realm, registry_url)
        if differs:
            raise ValueError(
                f"token realm {shown} is on another {differs} than the registry; credentials "
                "are sent to the registry's own origin only (its scheme, host and port)"
            )
        headers["Authorization"] = credentials.basic_header()
    scopes = [scope]
    if challenge.params.get("scope") and challenge.params["scope"] != scope:
        scopes.append(challenge.params["scope"])
    params: list[tuple[str, str | int | float | bool | None]] = [("scope", each) for each in scopes]
    if "service" in challenge.params:
        params.insert(0, ("service", challenge.params["service"]))
    return TokenRequest(url=realm, params=params, headers=headers)


DEFAULT_TOKEN_LIFETIME = 60.0
"""Seconds a bearer token lives when its answer gives no ``expires_in`` (the Docker token
specification's default)."""


def token_lifetime(answer: Mapping[str, object]) -> float:
    """Seconds the token of a token answer lives: ``expires_in``, or the specification's 60."""
    lifetime = answer.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
        return DEFAULT_TOKEN_LIFETIME
    if not math.isfinite(lifetime) or lifetime <= 0:  # json reads NaN and Infinity too
        return DEFAULT_TOKEN_LIFETIME
    return float(lifetime)


def other_origin(url: httpx.URL, registry_url: httpx.URL) -> str:
    """What of ``url``'s origin is not the registry's: "host", "port", "scheme", or "" if none.

    Hosts are compared whole (httpx lowercases them): a look-alike (``notghcr.io``) or a
    subdomain (``auth.ghcr.io``) is another host. A default port is the scheme's (httpx: None).
    """
    parts = [
        ("host", url.host, registry_url.host),
        ("port", url.port, registry_url.port),
        ("scheme", url.scheme, registry_url.scheme),
    ]
    return " and ".join(name for name, mine, theirs in parts if mine != theirs)


def token_of(answer: Mapping[str, object]) -> str:
    """``token`` (or ``access_token``) of a token endpoint's JSON answer."""
    token = answer.get("token") or answer.get("access_token")
    if not isinstance(token, str) or not token or not token.isascii() or not token.isprintable():
        raise ValueError("answer has no 'token' or 'access_token' of printable ASCII")
    return token
