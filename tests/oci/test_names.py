"""``pipeline.oci.names``: the whole message for each refused name, and the exact boundaries.

What a caller reads for a refused digest, repository, reference, digest algorithm or registry host,
and the edges of what is accepted (port 65535, a host name of 253 characters). The checks are
plain functions, called here directly.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager

import pytest
from pipeline.oci.names import (
    check_digest,
    check_reference,
    check_repository,
    digest_of,
    host_of,
    normalize_registry,
    parse_image_reference,
)

REGISTRY_ACCEPTED = (
    "accepted: a host name or IP address with an optional port (1-65535) and no scheme, "
    "user or path, e.g. ghcr.io, 127.0.0.1:5000 or [::1]:5000"
)
LONGEST_HOST = ".".join(["a" * 63] * 3 + ["b" * 61])
"""A host name of 253 characters, the most a DNS name may have."""


def refused(message: str) -> AbstractContextManager[pytest.ExceptionInfo[ValueError]]:
    """Expect a ValueError whose whole message is ``message``."""
    return pytest.raises(ValueError, match=re.escape(message) + "$")


@pytest.mark.parametrize(
    "digest", ["sha256:" + "A" * 64, "sha512:" + "0" * 64, "md5:" + "0" * 32, "latest"]
)
def test_check_digest_says_what_a_digest_is(digest: str) -> None:
    """A value that is not a lowercase sha256 or sha512 digest is refused with the forms."""
    with refused(
        f"digest {digest!r} is not a content digest; accepted: sha256:<64 hex digits> "
        "or sha512:<128 hex digits>, lowercase"
    ):
        check_digest(digest)


def test_digest_of_refuses_an_unsupported_algorithm_naming_the_supported_ones() -> None:
    """Only sha256 and sha512 digests are computed; the message lists them."""
    with refused("digest algorithm 'md5' is not supported; accepted: sha256, sha512"):
        digest_of(b"", "md5")


@pytest.mark.parametrize("repository", ["Steinbeck/api", "steinbeck/api/", "a//b", ""])
def test_check_repository_says_what_a_repository_path_is(repository: str) -> None:
    """A repository path that breaks the distribution grammar is refused with the grammar."""
    with refused(
        f"repository {repository!r} is not a repository path; accepted: lowercase path "
        "components of letters and digits joined by '.', '_', '__' or '-', separated by "
        "'/' and without the registry host, e.g. steinbeck/qm-nmr-calc-api"
    ):
        check_repository(repository)


@pytest.mark.parametrize("reference", [".hidden", "-1", "a" * 129, "sha256:abc", "v1/2"])
def test_check_reference_says_what_a_tag_or_digest_is(reference: str) -> None:
    """A reference that is neither a tag nor a digest is refused with both grammars."""
    with refused(
        f"reference {reference!r} is neither a tag nor a digest; accepted: a tag of "
        "[A-Za-z0-9_][A-Za-z0-9._-]{0,127} or a digest, sha256:<64 hex digits> "
        "or sha512:<128 hex digits>, lowercase"
    ):
        check_reference(reference)


def test_normalize_registry_refuses_user_information_without_repeating_it() -> None:
    """``user:password@host`` is refused, and the password is not in the message."""
    with refused(
        "registry value holds user information (USER:PASSWORD@HOST) and is refused; give "
        f"the user with --username and the password in the environment; {REGISTRY_ACCEPTED}"
    ):
        normalize_registry("bot:s3cret@ghcr.io")


@pytest.mark.parametrize(
    ("registry", "problem"),
    [
        ("https://ghcr.io", "is not a registry host"),
        ("ghcr.io/steinbeck", "is not a registry host"),
        ("ghcr.io:65536", "has port 65536, outside 1-65535"),
        ("ghcr.io:0", "has port 0, outside 1-65535"),
        ("[1:2:3]:5000", "has a malformed IPv6 address in brackets"),
        ("[::1::2]", "has a malformed IPv6 address in brackets"),
        (LONGEST_HOST + "c", "has a host name longer than 253 characters"),
        ("256.0.0.1", "is neither a host name nor an IPv4 address (four numbers 0-255)"),
        ("127.0.1:5000", "is neither a host name nor an IPv4 address (four numbers 0-255)"),
    ],
    ids=[
        "scheme",
        "path",
        "port-too-high",
        "port-zero",
        "ipv6-too-short",
        "ipv6-two-gaps",
        "name-too-long",
        "octet-too-high",
        "three-numbers",
    ],
)
def test_normalize_registry_says_why_a_host_cannot_be_used(registry: str, problem: str) -> None:
    """A registry the HTTP layer could not use is refused with the reason and what is accepted."""
    with refused(f"registry {registry!r} {problem}; {REGISTRY_ACCEPTED}"):
        normalize_registry(registry)


@pytest.mark.parametrize(
    ("registry", "normalized"),
    [
        ("GHCR.io:65535", "ghcr.io:65535"),
        ("127.0.0.1:1", "127.0.0.1:1"),
        (LONGEST_HOST, LONGEST_HOST),
        (LONGEST_HOST.upper() + ":443", LONGEST_HOST + ":443"),
        ("[::1]:5000", "[::1]:5000"),
    ],
    ids=["highest-port", "lowest-port", "longest-name", "longest-name-with-port", "ipv6"],
)
def test_normalize_registry_accepts_the_edges_and_lowercases(
    registry: str, normalized: str
) -> None:
    """Port 65535 and a 253-character host name are usable; the host is lowercased."""
    assert normalize_registry(registry) == normalized


@pytest.mark.parametrize("registry", ["ghcr.io/steinbeck", "user@ghcr.io", "[::1"])
def test_host_of_refuses_what_is_not_a_registry_host(registry: str) -> None:
    """``host_of`` of something that is not a host says so, with what is accepted."""
    with refused(f"registry {registry!r} is not a registry host; {REGISTRY_ACCEPTED}"):
        host_of(registry)


def test_usable_registries_are_kept() -> None:
    for host in ("ghcr.io", "127.0.0.1:5000", "[::1]:5000", "Registry.Example:443"):
        assert normalize_registry(host) == host.lower()


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("python:3.11-slim", ("docker.io", "library/python", "3.11-slim", None)),
        ("bitnami/redis:7", ("docker.io", "bitnami/redis", "7", None)),
        ("ghcr.io/astral-sh/uv:0.13.9", ("ghcr.io", "astral-sh/uv", "0.13.9", None)),
        ("localhost/a/b", ("localhost", "a/b", None, None)),
        ("127.0.0.1:5000/x:1", ("127.0.0.1:5000", "x", "1", None)),
        (
            f"python@{'sha256:' + 'c' * 64}",
            ("docker.io", "library/python", None, "sha256:" + "c" * 64),
        ),
    ],
)
def test_image_references_are_split_as_docker_reads_them(
    reference: str, expected: tuple[str, str, str | None, str | None]
) -> None:
    name = parse_image_reference(reference)
    assert (name.registry, name.repository, name.tag, name.digest) == expected


def test_a_pinned_reference_keeps_registry_repository_and_tag() -> None:
    digest = "sha256:" + "d" * 64
    assert (
        parse_image_reference("python:3.11").pinned(digest)
        == f"docker.io/library/python:3.11@{digest}"
    )


@pytest.mark.parametrize("reference", ["Python:3", "python:bad tag", "python@sha256:12"])
def test_malformed_image_references_are_refused(reference: str) -> None:
    with pytest.raises(ValueError, match="accepted"):
        parse_image_reference(reference)
