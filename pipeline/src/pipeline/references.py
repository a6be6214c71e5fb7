"""Where an image is published: registry host, owner and repository names.

GHCR requires lowercase repository paths, so the owner is lowercased; a registry or owner that
cannot form a valid image reference is refused before anything else happens.
"""

from __future__ import annotations

import re

from pipeline.catalogue import PROJECT, ImageSpec

DEFAULT_REGISTRY = "ghcr.io"
DEFAULT_OWNER = "steinbeck"

# The distribution reference grammar: a host name or IPv4 address (or [IPv6]), optional port.
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(
    rf"^(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]{{1,5}})?\Z"
)
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


def normalize_registry(registry: str) -> str:
    """A registry host such as ``ghcr.io`` or ``127.0.0.1:5000``; refuses schemes and paths."""
    if not _REGISTRY.match(registry):
        raise ValueError(
            f"registry {registry!r} is not a registry host; accepted: a host name or address "
            "with an optional port and no scheme or path, e.g. ghcr.io or 127.0.0.1:5000"
        )
    return registry.lower()


def normalize_owner(owner: str) -> str:
    """The owner as a repository path component: lowercased, as GHCR requires."""
    lowered = owner.lower()
    if not _PATH_COMPONENT.match(lowered):
        raise ValueError(
            f"owner {owner!r} cannot form an image repository; accepted: letters, digits and "
            "single '.', '_' or '-' between them, e.g. steinbeck"
        )
    return lowered


def repository(registry: str, owner: str, image: ImageSpec) -> str:
    """The full repository of ``image``, e.g. ``ghcr.io/steinbeck/qm-nmr-calc-api``."""
    return f"{normalize_registry(registry)}/{normalize_owner(owner)}/{image.repository_name()}"


def source_url(owner: str) -> str:
    """The application's GitHub repository, which GHCR links the packages to."""
    return f"https://github.com/{normalize_owner(owner)}/{PROJECT}"


def registry_host(reference: str) -> str:
    """The registry part of a repository or reference (``ghcr.io`` of ``ghcr.io/a/b:1``)."""
    return reference.split("/", 1)[0]


def is_loopback(registry: str) -> bool:
    """Whether ``registry`` is on this machine, the only case where plain HTTP is allowed."""
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    return host.lower() in LOOPBACK_HOSTS or host.startswith("127.")


def repository_path(reference: str) -> str:
    """The repository below the registry host (``steinbeck/x`` of ``ghcr.io/steinbeck/x:1``)."""
    path = reference.split("/", 1)[1]
    return path.split("@", 1)[0].rsplit(":", 1)[0] if ":" in path else path
