"""Where an image is published: registry host, owner and repository names.

GHCR requires lowercase repository paths, so the owner is lowercased; a registry or owner that
cannot form a valid image reference is refused before anything else happens. The registry host
grammar lives in ``pipeline.oci.names``, shared with the registry client.
"""

from __future__ import annotations

import re

from pipeline.oci.names import host_of, is_loopback_ip
from pipeline.oci.names import normalize_registry as normalize_registry
from pipeline.rules.catalogue import PROJECT, ImageSpec

DEFAULT_REGISTRY = "ghcr.io"
DEFAULT_OWNER = "steinbeck"

_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:-?[A-Za-z0-9])*\Z", re.ASCII)
MAX_OWNER = 39
"""GitHub user and organisation names have at most 39 characters."""


def normalize_owner(owner: str) -> str:
    """A GitHub owner as a repository path component: lowercased, as GHCR requires.

    Checked before lowercasing and against ASCII only, so that compatibility forms (the Kelvin
    sign U+212A lowercases to ``k``) are refused rather than folded into another owner.
    """
    if len(owner) > MAX_OWNER or not _GITHUB_OWNER.match(owner):
        raise ValueError(
            f"owner {owner!r} is not a GitHub user or organisation name; accepted: at most "
            f"{MAX_OWNER} ASCII letters and digits with single '-' between them, e.g. steinbeck"
        )
    return owner.lower()


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
    """Whether ``registry`` is a loopback IP address: the only host plain HTTP goes to.

    Decided on the address, never on the name: ``127.attacker.example`` and ``localhost`` are
    names, which any resolver may point elsewhere, and get HTTPS.
    """
    return is_loopback_ip(host_of(registry))


def on_host_loopback(registry: str) -> bool:
    """Whether ``registry`` names the machine it is asked from: ``localhost`` or a loopback IP.

    The Dagger engine and a module's container each have their own network namespace, so such
    a registry, running on the host, is reachable from neither.
    """
    return host_of(registry) == "localhost" or is_loopback(registry)


def repository_path(reference: str) -> str:
    """The repository below the registry host (``steinbeck/x`` of ``ghcr.io/steinbeck/x:1``)."""
    path = reference.split("/", 1)[1]
    return path.split("@", 1)[0].rsplit(":", 1)[0] if ":" in path else path
