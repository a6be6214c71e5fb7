"""The OCI distribution grammar for names: registry hosts, repository paths, tags and digests.

One grammar, used both for what the pipeline is asked (``--registry``, ``--owner``) and for what
it sends to and reads from a registry. A registry host is refused here when the HTTP layer could
not use it: a port over 65535, an IPv4 literal with an octet over 255, a malformed IPv6 literal,
or user information (``user:password@``), which is never repeated in the message.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass

PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
"""One component of a repository path, as the distribution spec defines it."""
_REPOSITORY = re.compile(rf"^{PATH_COMPONENT}(?:/{PATH_COMPONENT})*\Z", re.ASCII)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z", re.ASCII)
_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z", re.ASCII)
DIGEST_ALGORITHMS = ("sha256", "sha512")
DIGESTS_ACCEPTED = "sha256:<64 hex digits> or sha512:<128 hex digits>, lowercase"
"""The digest forms accepted, as every refusal of a digest names them."""

_HOST_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]{0,61}[a-zA-Z0-9])"
_HOST = re.compile(
    rf"^(?P<host>{_HOST_LABEL}(?:\.{_HOST_LABEL})*|\[(?P<ipv6>[0-9a-fA-F:.]+)\])"
    r"(?::(?P<port>[0-9]{1,5}))?\Z",
    re.ASCII,
)
_NUMERIC_HOST = re.compile(r"^[0-9.]+\Z", re.ASCII)
MAX_HOST_NAME = 253
MAX_PORT = 65535
_REGISTRY_ACCEPTED = (
    "accepted: a host name or IP address with an optional port (1-65535) and no scheme, "
    "user or path, e.g. ghcr.io, 127.0.0.1:5000 or [::1]:5000"
)


def is_digest(text: str) -> bool:
    """Whether ``text`` is a sha256 or sha512 content digest."""
    return bool(_DIGEST.match(text))


def check_digest(digest: str) -> str:
    """``digest`` if it is a valid sha256 or sha512 content digest."""
    if not is_digest(digest):
        raise ValueError(f"digest {digest!r} is not a content digest; accepted: {DIGESTS_ACCEPTED}")
    return digest


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The content digest of ``data``, e.g. ``sha256:<64 hex digits>``."""
    if algorithm not in DIGEST_ALGORITHMS:
        raise ValueError(
            f"digest algorithm {algorithm!r} is not supported; accepted: "
            f"{', '.join(DIGEST_ALGORITHMS)}"
        )
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_repository(repository: str) -> str:
    """``repository`` if it is a valid repository path below the host."""
    if not _REPOSITORY.match(repository):
        raise ValueError(
            f"repository {repository!r} is not a repository path; accepted: lowercase path "
            "components of letters and digits joined by '.', '_', '__' or '-', separated by "
            "'/' and without the registry host, e.g. steinbeck/qm-nmr-calc-api"
        )
    return repository


def check_reference(reference: str) -> str:
    """``reference`` if it is a tag or a content digest."""
    if _TAG.match(reference) or is_digest(reference):
        return reference
    raise ValueError(
        f"reference {reference!r} is neither a tag nor a digest; accepted: a tag of "
        f"[A-Za-z0-9_][A-Za-z0-9._-]{{0,127}} or a digest, {DIGESTS_ACCEPTED}"
    )


def normalize_registry(registry: str) -> str:
    """A usable registry host such as ``ghcr.io`` or ``127.0.0.1:5000``, lowercased."""
    if "@" in registry:
        # Whatever precedes '@' may be a password: say what is wrong without repeating it.
        raise ValueError(
            "registry value holds user information (USER:PASSWORD@HOST) and is refused; give "
            f"the user with --username and the password in the environment; {_REGISTRY_ACCEPTED}"
        )
    match = _HOST.match(registry)
    problem = _host_problem(match) if match else "is not a registry host"
    if problem:
        raise ValueError(f"registry {registry!r} {problem}; {_REGISTRY_ACCEPTED}")
    return registry.lower()


def _host_problem(match: re.Match[str]) -> str | None:
    """Why a host that matches the grammar cannot be used by the HTTP layer, if it cannot."""
    host, ipv6, port = match.group("host"), match.group("ipv6"), match.group("port")
    if port is not None and not 1 <= int(port) <= MAX_PORT:
        return f"has port {int(port)}, outside 1-{MAX_PORT}"
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            return "has a malformed IPv6 address in brackets"
        return None
    if len(host) > MAX_HOST_NAME:
        return f"has a host name longer than {MAX_HOST_NAME} characters"
    if _NUMERIC_HOST.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "is neither a host name nor an IPv4 address (four numbers 0-255)"
    return None


def host_of(registry: str) -> str:
    """The host of a registry without its port or IPv6 brackets (``::1`` of ``[::1]:5000``)."""
    match = _HOST.match(registry)
    if match is None:
        raise ValueError(f"registry {registry!r} is not a registry host; {_REGISTRY_ACCEPTED}")
    return match.group("ipv6") or match.group("host")


def is_loopback_ip(host: str) -> bool:
    """Whether ``host`` (no port, no brackets) is a loopback IP address; a name never is."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, e.g. 127.attacker.example or localhost


DOCKER_HUB = "docker.io"
"""The registry of a reference that names none (``python:3.11``), as Docker reads it."""
DOCKER_HUB_OFFICIAL = "library"
"""The namespace of Docker Hub's one-component names (``python`` is ``library/python``)."""


@dataclass(frozen=True)
class ImageReference:
    """An image reference split as Docker reads it: registry, repository path, tag, digest."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    def pinned(self, digest: str) -> str:
        """This reference with ``digest``: ``registry/repository[:tag]@digest``."""
        check_digest(digest)
        tag = f":{self.tag}" if self.tag is not None else ""
        return f"{self.registry}/{self.repository}{tag}@{digest}"


def parse_image_reference(reference: str) -> ImageReference:
    """``reference`` (``python:3.11-slim``, ``ghcr.io/astral-sh/uv:0.13.9@sha256:…``), split.

    The first component is a registry only if it has a dot or a port, or is ``localhost``;
    otherwise the image is on Docker Hub, whose one-component names are under ``library/``.
    """
    rest, _, digest = reference.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = normalize_registry(first), remainder
    else:
        registry, path = DOCKER_HUB, rest
    name, colon, tag = path.rpartition(":") if ":" in path else (path, "", "")
    if registry == DOCKER_HUB and "/" not in name:
        name = f"{DOCKER_HUB_OFFICIAL}/{name}"
    check_repository(name)
    if colon:
        check_reference(tag)
    if digest:
        check_digest(digest)
    return ImageReference(registry, name, tag if colon else None, digest or None)
