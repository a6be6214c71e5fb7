"""The registry client's exact answers and refusals, word for word, against scripted registries.

This file exists because mutation testing (``bench/mutation_score.py``) found changes to
``pipeline.oci.client`` that no other test noticed: a refusal naming the wrong operation or
losing its status, the Content-Type parameters or a document's ``mediaType`` read wrongly, a
digest reference or a sha512 digest not checked, a pagination loop on a later page not seen, a
redirect followed where none should be. Each test here pins what a caller sees in those cases:
the whole message, the status and code of the RegistryError, the value returned, or the request
sent. The server is ``hostile_registry`` (real HTTP on loopback, answers chosen per test), or an
``httpx.MockTransport`` where a test needs a token endpoint or a pause in the event loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator

import anyio
import httpx
import pytest
from hostile_registry import Handler, HostileRegistry, Reply, Request, endless_pages, status
from oci_images import build_image, sha256_digest
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, Limits, RegistryClient, RegistryError
from pipeline.oci.documents import ACCEPTED_TYPES, DOCKER_MANIFEST, Manifest
from pipeline.oci.names import digest_of

pytestmark = pytest.mark.anyio

REPO = "hostile/qm-nmr-calc-api"
TAG = "1.0.0"
LIMITS = Limits(read_timeout=5.0, deadline=10.0, retry_pauses=())
"""No repeats: every answer a test scripts is the one the client acts on."""
CONFIG = b'{"architecture":"amd64","os":"linux"}'
BARE_MANIFEST = json.dumps(
    {"schemaVersion": 2, "config": {"digest": sha256_digest(CONFIG), "size": len(CONFIG)}}
).encode()
"""A valid image manifest that declares no ``mediaType``: only Content-Type says what it is."""
DECLARING_MANIFEST = build_image("linux/amd64", {}).manifest
"""A valid image manifest that declares ``mediaType`` OCI_MANIFEST."""
DENIED = json.dumps({"errors": [{"code": "DENIED", "message": "nope"}]}).encode()

Call = Callable[[RegistryClient], Awaitable[object]]


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileRegistry]:
    """One scriptable registry for the module (each test gives it a handler)."""
    with HostileRegistry(status(500)) as server:
        yield server


@pytest.fixture
def server(hostile: HostileRegistry) -> HostileRegistry:
    """The module's scriptable registry, no request seen yet, answering 500 until a test chooses."""
    hostile.handler = status(500)
    hostile.requests.clear()
    return hostile


async def refusal(
    server: HostileRegistry, handler: Handler, call: Call, limits: Limits = LIMITS
) -> tuple[str, RegistryError]:
    """The registry host and the RegistryError that ``call`` ends with when ``server`` answers
    with ``handler``."""
    server.handler = handler
    async with RegistryClient(server.host, limits=limits) as client:
        with pytest.raises(RegistryError) as caught:
            await call(client)
    return server.host, caught.value


def observed(error: RegistryError) -> tuple[str, int | None, str | None]:
    """What a caller reads from a RegistryError: message, status and code."""
    return str(error), error.status, error.code


def serve_manifest(body: bytes, headers: dict[str, str]) -> Handler:
    """Every request answered 200 with ``body`` and exactly ``headers`` (and Content-Length)."""
    return lambda _request, reply: reply.send(200, body, headers)


def tag_pages(pages: dict[str, tuple[list[str], str | None]]) -> Handler:
    """tags/list pages by query: the tags of each and the target of its ``rel="next"`` Link."""

    def handle(request: Request, reply: Reply) -> None:
        tags, link = pages[request.query]
        headers = {"Link": f'<{link}>; rel="next"'} if link is not None else {}
        reply.json(200, {"tags": tags}, headers)

    return handle


# --- constructing a client --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password"), [("bot", None), (None, "secret")], ids=["no-password", "no-user"]
)
def test_a_user_without_password_or_the_reverse_is_refused(
    username: str | None, password: str | None
) -> None:
    message = "give both username and password, or neither (anonymous access)"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        RegistryClient("ghcr.io", username=username, password=password)


def test_a_client_shows_its_normalized_registry_and_user() -> None:
    """``registry`` is the normalized host, ``username`` the user given; repr has no secret."""
    client = RegistryClient("GHCR.io", username="bot", password="hunter2")
    assert (client.registry, client.username) == ("ghcr.io", "bot")
    assert repr(client) == (
        "RegistryClient(registry='ghcr.io', Credentials(username='bot', password=<set>))"
    )


# --- tags: page size, missing repositories, bad pages -----------------------------------------


async def test_a_page_size_of_one_is_sent_as_n(server: HostileRegistry) -> None:
    server.handler = tag_pages({"n=1": (["1.0.0"], None)})
    async with RegistryClient(server.host, limits=LIMITS) as client:
        assert await client.list_tags(REPO, page_size=1) == ["1.0.0"]
    assert [request.target for request in server.requests] == [f"/v2/{REPO}/tags/list?n=1"]


@pytest.mark.parametrize("page_size", [0, -1])
async def test_a_page_size_below_one_is_refused(page_size: int) -> None:
    async with RegistryClient("ghcr.io") as client:
        message = f"page_size {page_size} is not accepted; give a positive number"
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            await client.list_tags(REPO, page_size=page_size)


def not_found(code: str) -> Handler:
    """A 404 with one OCI error of ``code``."""
    body = json.dumps({"errors": [{"code": code, "message": "unknown"}]}).encode()
    return lambda _request, reply: reply.send(404, body, reason="Not Found")


def second_page_missing(request: Request, reply: Reply) -> None:
    """A first page linking to a second that answers 404 NAME_UNKNOWN."""
    if request.query:
        not_found("NAME_UNKNOWN")(request, reply)
    else:
        reply.json(
            200, {"tags": ["1.0.0"]}, {"Link": f'</v2/{REPO}/tags/list?last=1.0.0>; rel="next"'}
        )


@pytest.mark.parametrize(
    ("handler", "code"),
    [(not_found("BLOB_UNKNOWN"), "BLOB_UNKNOWN"), (second_page_missing, "NAME_UNKNOWN")],
    ids=["other-code-on-first-page", "name-unknown-on-a-later-page"],
)
async def test_a_404_other_than_a_missing_repository_is_an_error(
    server: HostileRegistry, handler: Handler, code: str
) -> None:
    """Only NAME_UNKNOWN on the first page means "no such repository" ([])."""
    host, error = await refusal(server, handler, lambda client: client.list_tags(REPO))
    assert observed(error) == (
        f"registry {host}: GET tags of {REPO} failed: 404 not found: {code}: unknown",
        404,
        code,
    )


@pytest.mark.parametrize(
    ("body", "what", "status_code"),
    [
        (b"[]", "tag list is JSON but not an object; accepted: a JSON object", 200),
        (b'{"tags": "1.0.0"}', "'tags' is not a list of strings", 200),
        (b'{"tags": [1]}', "'tags' is not a list of strings", 200),
        (b'{"tags": ""}', "'tags' is not a list of strings", 200),
        (b'{"tags": false}', "'tags' is not a list of strings", 200),
        (b'{"tags": {}}', "'tags' is not a list of strings", 200),
    ],
    ids=[
        "list-for-object",
        "tags-a-string",
        "tags-of-numbers",
        "empty-string",
        "false",
        "empty-object",
    ],
)
async def test_a_malformed_tag_list_is_refused(
    server: HostileRegistry, body: bytes, what: str, status_code: int | None
) -> None:
    host, error = await refusal(server, status(200, body), lambda client: client.list_tags(REPO))
    assert observed(error) == (
        f"registry {host}: GET tags of {REPO} failed: bad answer: {what}",
        status_code,
        None,
    )


@pytest.mark.parametrize("body", [b'{"tags": null}', b'{"name": "x"}'], ids=["null", "absent"])
async def test_tags_null_or_absent_is_an_empty_repository(
    server: HostileRegistry, body: bytes
) -> None:
    """Registries answer ``"tags": null`` for a repository whose tags were all deleted."""
    server.handler = status(200, body)
    async with RegistryClient(server.host, limits=LIMITS) as client:
        assert await client.list_tags(REPO) == []


# --- tags: pagination links -------------------------------------------------------------------


async def test_a_link_to_another_repository_is_refused_naming_the_accepted_path(
    server: HostileRegistry,
) -> None:
    link = '</v2/hostile/other/tags/list?last=a>; rel="next"'
    host, error = await refusal(
        server,
        status(200, b'{"tags":["1.0.0"]}', {"Link": link}),
        lambda client: client.list_tags(REPO),
    )
    assert observed(error) == (
        f"registry {host}: GET tags of {REPO} failed: pagination link to "
        f"http://{host}/v2/hostile/other/tags/list refused; "
        f"accepted: /v2/{REPO}/tags/list on this registry",
        200,
        None,
    )


async def test_a_malformed_link_is_refused(server: HostileRegistry) -> None:
    link = '<http://[::1/x>; rel="next"'
    host, error = await refusal(
        server,
        status(200, b'{"tags":["1.0.0"]}', {"Link": link}),
        lambda client: client.list_tags(REPO),
    )
    assert observed(error) == (
        f"registry {host}: GET tags of {REPO} failed: malformed pagination Link",
        200,
        None,
    )


@pytest.mark.parametrize(
    "pages",
    [
        {"": (["1.0.0"], f"/v2/{REPO}/tags/list")},
        {
            "": (["1.0.0"], f"/v2/{REPO}/tags/list?last=a"),
            "last=a": (["2.0.0"], f"/v2/{REPO}/tags/list?last=a"),
        },
    ],
    ids=["back-to-the-first-page", "a-later-page-to-itself"],
)
async def test_pagination_that_loops_is_refused_at_once(
    server: HostileRegistry, pages: dict[str, tuple[list[str], str | None]]
) -> None:
    """A link to any page already read ends the listing, not only a link to the first page."""
    limits = Limits(read_timeout=5.0, deadline=10.0, retry_pauses=(), max_tag_pages=4)
    server.handler = tag_pages(pages)
    async with RegistryClient(server.host, limits=limits) as client:
        with pytest.raises(RegistryError) as caught:
            await client.list_tags(REPO)
    assert observed(caught.value) == (
        f"registry {server.host}: GET tags of {REPO} failed: pagination links loop back",
        200,
        None,
    )
    assert len(server.requests) == len(pages)


async def test_endless_pagination_is_refused_naming_the_page_cap(server: HostileRegistry) -> None:
    limits = Limits(read_timeout=5.0, deadline=10.0, retry_pauses=(), max_tag_pages=3)
    host, error = await refusal(
        server, endless_pages({}), lambda client: client.list_tags(REPO), limits
    )
    assert observed(error) == (
        f"registry {host}: GET tags of {REPO} failed: "
        "more than 3 pages of tags; refused as endless",
        None,
        None,
    )


async def test_the_deadline_covers_every_page_and_names_the_listing() -> None:
    """The listing's own deadline runs out while a later page is awaited: its message."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if "last" in request.url.params:
            await anyio.sleep_forever()
        await anyio.sleep(0.6)  # the second page's own deadline ends 0.6 s after the listing's
        link = f'</v2/{REPO}/tags/list?last=a>; rel="next"'
        return httpx.Response(200, json={"tags": ["1.0.0"]}, headers={"Link": link})

    limits = Limits(read_timeout=5.0, deadline=1.2, retry_pauses=())
    async with RegistryClient(
        "ghcr.io", transport=httpx.MockTransport(handle), limits=limits
    ) as client:
        with anyio.fail_after(10), pytest.raises(RegistryError) as caught:
            await client.list_tags(REPO)
    assert observed(caught.value) == (
        f"registry ghcr.io: GET tags of {REPO} failed: no complete answer within 1.2 s",
        None,
        None,
    )


@pytest.mark.parametrize("read", ["tags", "manifest"])
async def test_a_redirect_is_not_followed_for_tags_or_manifests(
    server: HostileRegistry, read: str
) -> None:
    """Only blobs follow redirects (to a CDN); elsewhere a redirect is an unexpected status."""
    redirect = status(307, b"", {"Location": f"/v2/{REPO}/elsewhere"})
    if read == "tags":
        host, error = await refusal(server, redirect, lambda client: client.list_tags(REPO))
        operation = f"GET tags of {REPO}"
    else:
        host, error = await refusal(server, redirect, lambda client: client.get_manifest(REPO, TAG))
        operation = f"GET manifest {REPO}:{TAG}"
    assert observed(error) == (
        f"registry {host}: {operation} failed: 307 temporary redirect",
        307,
        None,
    )


# --- manifests: missing, refused, scope -------------------------------------------------------


async def test_a_missing_manifest_is_a_404_manifest_unknown(server: HostileRegistry) -> None:
    host, error = await refusal(
        server, not_found("MANIFEST_UNKNOWN"), lambda client: client.get_manifest(REPO, TAG)
    )
    assert observed(error) == (
        f"registry {host}: GET manifest {REPO}:{TAG} failed: 404 not found",
        404,
        "MANIFEST_UNKNOWN",
    )


async def test_a_refused_manifest_read_names_the_manifest(server: HostileRegistry) -> None:
    host, error = await refusal(
        server,
        lambda _request, reply: reply.send(400, DENIED, reason="Bad Request"),
        lambda client: client.get_manifest(REPO, TAG),
    )
    assert observed(error) == (
        f"registry {host}: GET manifest {REPO}:{TAG} failed: 400 bad request: DENIED: nope",
        400,
        "DENIED",
    )


def token_registry(
    scopes: list[str], answer: Callable[[httpx.Request], httpx.Response]
) -> httpx.MockTransport:
    """A registry with Bearer challenges whose token endpoint records the scopes asked for."""
    challenge = 'Bearer realm="https://ghcr.io/token",service="ghcr.io"'

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            scope = request.url.params["scope"]
            scopes.append(scope)
            return httpx.Response(200, json={"token": f"tok-{len(scopes)}"})
        if "authorization" not in request.headers:
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return answer(request)

    return httpx.MockTransport(handle)


def by_path(request: httpx.Request) -> httpx.Response:
    """The manifest DECLARING_MANIFEST for manifest paths, CONFIG for blob paths."""
    if "/manifests/" in request.url.path:
        headers = {"Content-Type": OCI_MANIFEST}
        return httpx.Response(200, content=DECLARING_MANIFEST, headers=headers)
    return httpx.Response(200, content=CONFIG)


async def test_reads_ask_for_a_pull_token_on_their_repository() -> None:
    scopes: list[str] = []
    async with RegistryClient("ghcr.io", transport=token_registry(scopes, by_path)) as client:
        manifest = await client.get_manifest(REPO, TAG)
        blob = await client.get_blob(REPO, sha256_digest(CONFIG))
    assert (manifest.raw, blob) == (DECLARING_MANIFEST, CONFIG)
    assert scopes == [f"repository:{REPO}:pull"]


# --- manifests: digests -----------------------------------------------------------------------


async def test_content_not_matching_the_digest_reference_is_refused(
    server: HostileRegistry,
) -> None:
    """Without a Docker-Content-Digest, the digest asked for is still checked."""
    asked = sha256_digest(b"another manifest")
    handler = serve_manifest(DECLARING_MANIFEST, {"Content-Type": OCI_MANIFEST})
    host, error = await refusal(server, handler, lambda client: client.get_manifest(REPO, asked))
    assert observed(error) == (
        f"registry {host}: GET manifest {REPO}:{asked} failed: content has digest "
        f"{sha256_digest(DECLARING_MANIFEST)}, not {asked}",
        None,
        None,
    )


async def test_a_wrong_docker_content_digest_is_refused(server: HostileRegistry) -> None:
    claimed = sha256_digest(b"x")
    handler = serve_manifest(
        DECLARING_MANIFEST, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": claimed}
    )
    host, error = await refusal(server, handler, lambda client: client.get_manifest(REPO, TAG))
    assert observed(error) == (
        f"registry {host}: GET manifest {REPO}:{TAG} failed: content has digest "
        f"{sha256_digest(DECLARING_MANIFEST)}, not {claimed}",
        None,
        None,
    )


async def test_a_docker_content_digest_that_is_no_digest_is_quoted_to_80_characters(
    server: HostileRegistry,
) -> None:
    header = "md5:" + "0123456789" * 10
    handler = serve_manifest(
        DECLARING_MANIFEST, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": header}
    )
    host, error = await refusal(server, handler, lambda client: client.get_manifest(REPO, TAG))
    assert observed(error) == (
        f"registry {host}: GET manifest {REPO}:{TAG} failed: "
        f"Docker-Content-Digest {header[:80]!r} is not a digest",
        None,
        None,
    )


@pytest.mark.parametrize("via", ["reference", "header"])
async def test_a_sha512_digest_is_checked_with_sha512(server: HostileRegistry, via: str) -> None:
    """A sha512 reference or Docker-Content-Digest that matches is accepted; the manifest's
    own digest stays its sha256 one."""
    sha512 = digest_of(DECLARING_MANIFEST, "sha512")
    headers = {"Content-Type": OCI_MANIFEST}
    reference = sha512 if via == "reference" else TAG
    if via == "header":
        headers["Docker-Content-Digest"] = sha512
    server.handler = serve_manifest(DECLARING_MANIFEST, headers)
    async with RegistryClient(server.host, limits=LIMITS) as client:
        manifest = await client.get_manifest(REPO, reference)
    assert manifest == Manifest(
        digest=sha256_digest(DECLARING_MANIFEST), media_type=OCI_MANIFEST, raw=DECLARING_MANIFEST
    )


# --- manifests: media types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "media_type"),
    [
        (BARE_MANIFEST, OCI_MANIFEST, OCI_MANIFEST),
        (BARE_MANIFEST, f"{OCI_MANIFEST}; charset=utf-8", OCI_MANIFEST),
        (BARE_MANIFEST, f"{OCI_MANIFEST};charset=utf-8; profile=x", OCI_MANIFEST),
        (BARE_MANIFEST, f" {DOCKER_MANIFEST.upper()} ", DOCKER_MANIFEST),
        (DECLARING_MANIFEST, "application/json", OCI_MANIFEST),
        (DECLARING_MANIFEST, None, OCI_MANIFEST),
    ],
    ids=[
        "content-type",
        "with-a-parameter",
        "with-two-parameters",
        "upper-case-and-spaces",
        "generic-type-then-declared",
        "no-content-type-then-declared",
    ],
)
async def test_the_media_type_is_the_content_type_else_the_declared_one(
    server: HostileRegistry, body: bytes, content_type: str | None, media_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    server.handler = serve_manifest(body, headers)
    async with RegistryClient(server.host, limits=LIMITS) as client:
        manifest = await client.get_manifest(REPO, TAG)
    assert manifest == Manifest(digest=sha256_digest(body), media_type=media_type, raw=body)


@pytest.mark.parametrize(
    ("body", "content_type", "what"),
    [
        (
            BARE_MANIFEST,
            None,
            f"media type '' is not supported; accepted: {ACCEPTED_TYPES}",
        ),
        (
            BARE_MANIFEST,
            "application/json",
            f"media type 'application/json' is not supported; accepted: {ACCEPTED_TYPES}",
        ),
        (
            DECLARING_MANIFEST,
            OCI_INDEX,
            f"document declares {OCI_MANIFEST!r}, served as {OCI_INDEX!r}",
        ),
        (b"[]", OCI_MANIFEST, "manifest is JSON but not an object; accepted: a JSON object"),
    ],
    ids=["no-type-at-all", "unsupported-type", "declared-and-served-disagree", "not-an-object"],
)
async def test_a_manifest_of_no_usable_type_is_refused(
    server: HostileRegistry, body: bytes, content_type: str | None, what: str
) -> None:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    host, error = await refusal(
        server, serve_manifest(body, headers), lambda client: client.get_manifest(REPO, TAG)
    )
    assert observed(error) == (
        f"registry {host}: GET manifest {REPO}:{TAG} failed: bad manifest: {what}",
        200,
        None,
    )


# --- storing manifests ------------------------------------------------------------------------


async def test_a_manifest_is_not_stored_under_another_digest() -> None:
    other = sha256_digest(b"x")
    message = (
        f"manifest has digest {sha256_digest(DECLARING_MANIFEST)}; it cannot be stored as {other}"
    )
    async with RegistryClient("ghcr.io") as client:
        with pytest.raises(ValueError, match=re.escape(message) + "$"):
            await client.put_manifest(REPO, other, DECLARING_MANIFEST, OCI_MANIFEST)


async def test_a_refused_manifest_write_names_the_manifest(server: HostileRegistry) -> None:
    host, error = await refusal(
        server,
        lambda _request, reply: reply.send(400, DENIED, reason="Bad Request"),
        lambda client: client.put_manifest(REPO, "latest", DECLARING_MANIFEST, OCI_MANIFEST),
    )
    assert observed(error) == (
        f"registry {host}: PUT manifest {REPO}:latest failed: 400 bad request: DENIED: nope",
        400,
        "DENIED",
    )


async def test_a_stored_manifest_acknowledged_with_another_digest_is_an_error(
    server: HostileRegistry,
) -> None:
    claimed = sha256_digest(b"x")
    host, error = await refusal(
        server,
        status(201, b"", {"Docker-Content-Digest": claimed}),
        lambda client: client.put_manifest(REPO, "latest", DECLARING_MANIFEST, OCI_MANIFEST),
    )
    assert observed(error) == (
        f"registry {host}: PUT manifest {REPO}:latest failed: content has digest "
        f"{sha256_digest(DECLARING_MANIFEST)}, not {claimed}",
        None,
        None,
    )


# --- blobs ------------------------------------------------------------------------------------


async def test_a_blob_with_a_sha512_digest_is_checked_with_sha512(server: HostileRegistry) -> None:
    digest = digest_of(CONFIG, "sha512")
    server.handler = status(200, CONFIG)
    async with RegistryClient(server.host, limits=LIMITS) as client:
        assert await client.get_blob(REPO, digest) == CONFIG
    assert [request.path for request in server.requests] == [f"/v2/{REPO}/blobs/{digest}"]


async def test_a_blob_of_other_content_is_refused(server: HostileRegistry) -> None:
    digest = sha256_digest(b"another blob")
    host, error = await refusal(
        server, status(200, CONFIG), lambda client: client.get_blob(REPO, digest)
    )
    assert observed(error) == (
        f"registry {host}: GET blob {REPO}@{digest} failed: content has digest "
        f"{sha256_digest(CONFIG)}",
        None,
        None,
    )


async def test_a_refused_blob_read_names_the_blob(server: HostileRegistry) -> None:
    digest = sha256_digest(CONFIG)
    host, error = await refusal(
        server,
        lambda _request, reply: reply.send(400, DENIED, reason="Bad Request"),
        lambda client: client.get_blob(REPO, digest),
    )
    assert observed(error) == (
        f"registry {host}: GET blob {REPO}@{digest} failed: 400 bad request: DENIED: nope",
        400,
        "DENIED",
    )


async def test_a_json_blob_that_is_no_object_is_refused(server: HostileRegistry) -> None:
    data = b"[1, 2]"
    digest = sha256_digest(data)
    host, error = await refusal(
        server, status(200, data), lambda client: client.get_json_blob(REPO, digest)
    )
    assert observed(error) == (
        f"registry {host}: GET blob {REPO}@{digest} failed: "
        f"blob {digest} is JSON but not an object; accepted: a JSON object",
        None,
        None,
    )
