"""The OCI registry client: its answers and refusals, against real and scripted registries.

Against the session's real ``docker-registry``: tags and their pagination, manifests (index,
single platform), blobs, digests, annotating an index, basic auth; against GHCR's token flow
emulated with ``httpx.MockTransport``: bearer tokens, their scopes and refusals.

Against scripted registries (``tests/support/hostile_registry.py``: real HTTP on loopback,
answers chosen per test, or a ``MockTransport`` where a test needs a token endpoint or a pause in
the event loop), each answer a real registry would never give is pinned word for word: a refusal
names its operation and keeps its status and code, the Content-Type parameters and a document's
``mediaType`` are read as specified, a digest reference and a sha512 digest are checked, a
pagination loop on a later page is seen, and no redirect is followed where none should be.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from functools import partial

import anyio
import httpx
import pytest
from pipeline.oci.client import (
    DOCKER_MANIFEST,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Limits,
    Manifest,
    RegistryClient,
    RegistryError,
    digest_of,
)
from pipeline.oci.documents import ACCEPTED_TYPES
from pipeline.oci.transport import ERROR_BODY
from pipeline.steps.concurrency import gather

from tests.support.hostile_registry import (
    Handler,
    HostileRegistry,
    Reply,
    Request,
    endless_pages,
    status,
)
from tests.support.oci_images import (
    annotate_index,
    build_image,
    push_blob,
    push_image,
    push_release_image,
    sha256_digest,
    split_reference,
)
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.anyio

API = "qm-nmr-calc-api"
WORKER = "qm-nmr-calc-worker"
PLATFORMS = ("linux/amd64", "linux/arm64")
LABELS = {
    "org.opencontainers.image.version": "2.4.0",
    "org.opencontainers.image.source": "https://github.com/steinbeck/qm-nmr-calc",
}
ANNOTATIONS = {
    "org.opencontainers.image.description": "qm-nmr-calc API",
    "org.opencontainers.image.licenses": "MIT",
    "org.opencontainers.image.version": "2.4.0",
}
GHCR_REPO = "steinbeck/qm-nmr-calc-api"
GHCR_CHALLENGE = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:{}:{}"'


def client_for(server: RegistryServer, **kwargs: object) -> RegistryClient:
    """A client for a test server, with its credentials unless overridden."""
    if server.username is not None and "username" not in kwargs:
        kwargs = {"username": server.username, "password": server.password, **kwargs}
    return RegistryClient(server.host, **kwargs)  # type: ignore[arg-type]


class CountingTransport(httpx.AsyncBaseTransport):
    """Forwards to the network and records (method, path) of every request."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class PaginatingTransport(CountingTransport):
    """Serves tags/list in pages as the distribution spec says (``n``, ``last``, ``Link``).

    Debian's distribution 2.8 ignores ``n`` on tags/list; this wraps the real registry so the
    client's Link-following runs against real data, with pages as GHCR and distribution 3 send.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if not request.url.path.endswith("/tags/list") or "n" not in params:
            return await super().handle_async_request(request)
        full = await super().handle_async_request(
            httpx.Request("GET", request.url.copy_with(query=None), headers=request.headers)
        )
        body = json.loads(await full.aread())
        await full.aclose()
        size, last = int(params["n"]), params.get("last", "")
        remaining = sorted(tag for tag in body["tags"] if tag > last)
        page = remaining[:size]
        headers = {}
        if len(remaining) > size:
            headers["Link"] = f'<{request.url.path}?n={size}&last={page[-1]}>; rel="next"'
        return httpx.Response(200, json={"name": body["name"], "tags": page}, headers=headers)


# --- the real registry: tags ----------------------------------------------------------------


async def test_list_tags_of_missing_repository_is_empty(
    registry: RegistryServer, owner: str
) -> None:
    async with client_for(registry) as client:
        assert await client.list_tags(f"{owner}/{API}") == []


async def test_push_and_list_tags(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{API}"
    async with client_for(registry) as client:
        await push_release_image(client, repo, ["2.3.0", "2.3"], PLATFORMS, LABELS)
        await push_release_image(client, repo, ["2.4.0", "2.4", "latest"], PLATFORMS, LABELS)
        tags = await client.list_tags(repo)
    assert sorted(tags) == ["2.3", "2.3.0", "2.4", "2.4.0", "latest"]
    assert len(tags) == len(set(tags))


async def test_list_tags_with_small_page_size_returns_every_tag(
    registry: RegistryServer, owner: str
) -> None:
    repo = f"{owner}/{WORKER}"
    wanted = [f"1.0.{patch}" for patch in range(7)]
    async with client_for(registry) as client:
        await push_release_image(client, repo, wanted, ["linux/amd64"], LABELS)
        assert sorted(await client.list_tags(repo, page_size=3)) == sorted(wanted)


async def test_list_tags_follows_link_pagination(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{WORKER}"
    wanted = [f"1.{minor}.0" for minor in range(8)]
    async with client_for(registry) as client:
        await push_release_image(client, repo, wanted, ["linux/amd64"], LABELS)
    transport = PaginatingTransport()
    async with client_for(registry, transport=transport) as client:
        tags = await client.list_tags(repo, page_size=3)
    assert tags == sorted(wanted)
    assert [path for _, path in transport.requests].count(f"/v2/{repo}/tags/list") == 3


async def test_list_tags_refuses_bad_page_size(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        with pytest.raises(ValueError, match="page_size 0"):
            await client.list_tags("a/b", page_size=0)


# --- the real registry: manifests and blobs -------------------------------------------------


async def test_get_manifest_of_index(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{API}"
    async with client_for(registry) as client:
        digest = await push_release_image(client, repo, ["2.4.0", "latest"], PLATFORMS, LABELS)
        by_tag = await client.get_manifest(repo, "2.4.0")
        by_digest = await client.get_manifest(repo, digest)
        entries = by_tag.document["manifests"]
        configs = []
        for entry in entries:
            child = await client.get_manifest(repo, entry["digest"])
            assert child.media_type == OCI_MANIFEST
            configs.append(await client.get_json_blob(repo, child.document["config"]["digest"]))
    assert by_tag.media_type == OCI_INDEX
    assert by_tag.is_index
    assert by_tag.digest == digest == digest_of(by_tag.raw)
    assert by_digest == by_tag
    assert [f"{e['platform']['os']}/{e['platform']['architecture']}" for e in entries] == list(
        PLATFORMS
    )
    assert [c["architecture"] for c in configs] == ["amd64", "arm64"]
    assert all(c["config"]["Labels"] == LABELS for c in configs)


async def test_single_platform_image_is_a_plain_manifest(
    registry: RegistryServer, owner: str
) -> None:
    repo = f"{owner}/{WORKER}"
    async with client_for(registry) as client:
        digest = await push_release_image(client, repo, ["2.4.0"], ["linux/amd64"], LABELS)
        manifest = await client.get_manifest(repo, "2.4.0")
    assert manifest.media_type == OCI_MANIFEST
    assert not manifest.is_index
    assert manifest.digest == digest


async def test_variant_platform_in_config(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{API}"
    async with client_for(registry) as client:
        digest, size, media_type = await push_image(
            client, repo, platform="linux/arm/v7", labels=LABELS
        )
        manifest = await client.get_manifest(repo, digest)
        config = await client.get_json_blob(repo, manifest.document["config"]["digest"])
    assert (size, media_type) == (len(manifest.raw), OCI_MANIFEST)
    assert (config["os"], config["architecture"], config["variant"]) == ("linux", "arm", "v7")
    assert len(config["rootfs"]["diff_ids"]) == 1


async def test_missing_manifest(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{API}"
    async with client_for(registry) as client:
        await push_release_image(client, repo, ["2.4.0"], ["linux/amd64"], LABELS)
        assert await client.get_manifest_or_none(repo, "9.9.9") is None
        with pytest.raises(RegistryError) as caught:
            await client.get_manifest(repo, "9.9.9")
    assert caught.value.status == 404
    assert f"registry {registry.host}: GET manifest {repo}:9.9.9 failed: 404" in str(caught.value)


async def test_push_blob_skips_existing_blob(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{API}"
    data = b"qm-nmr-calc blob"
    transport = CountingTransport()
    async with client_for(registry, transport=transport) as client:
        first = await push_blob(client, repo, data)
        uploads = [method for method, _ in transport.requests].count("POST")
        second = await push_blob(client, repo, data)
        assert await client.get_blob(repo, first) == data
    assert first == second == digest_of(data)
    assert uploads == 1
    assert [method for method, _ in transport.requests].count("POST") == 1


async def test_same_input_gives_same_digest(registry: RegistryServer, owner: str) -> None:
    async with client_for(registry) as client:
        first = await push_release_image(client, f"{owner}/a", ["1.0.0"], PLATFORMS, LABELS)
        second = await push_release_image(client, f"{owner}/b", ["1.0.0"], PLATFORMS, LABELS)
        other = await push_release_image(
            client, f"{owner}/c", ["1.0.0"], PLATFORMS, {**LABELS, "x": "y"}
        )
    assert first == second != other
    assert build_image("linux/amd64", LABELS) == build_image("linux/amd64", LABELS)


# --- the real registry: index annotations ---------------------------------------------------


async def test_annotate_index(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{API}"
    tags = ["2.4.0", "2.4", "latest"]
    async with client_for(registry) as client:
        old = await push_release_image(
            client, repo, ["2.3.0", "latest"], PLATFORMS, LABELS, annotations={"keep": "me"}
        )
        await push_release_image(
            client,
            repo,
            ["2.4.0"],
            PLATFORMS,
            LABELS,
            annotations={"keep": "me", "org.opencontainers.image.version": "old"},
        )
        before = await client.get_manifest(repo, "2.4.0")
        digest = await annotate_index(client, repo, tags, ANNOTATIONS)
        again = await annotate_index(client, repo, tags, ANNOTATIONS)
        resolved = {tag: await client.get_manifest(repo, tag) for tag in tags}
        still_old = await client.get_manifest(repo, "2.3.0")
    assert digest == again != before.digest
    assert {manifest.digest for manifest in resolved.values()} == {digest}
    document = resolved["latest"].document
    assert document["annotations"] == {"keep": "me", **ANNOTATIONS}
    assert document["manifests"] == before.document["manifests"]
    assert resolved["latest"].media_type == OCI_INDEX
    assert still_old.digest == old


async def test_annotate_index_refuses_single_manifest(registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{WORKER}"
    async with client_for(registry) as client:
        await push_release_image(client, repo, ["2.4.0"], ["linux/amd64"], LABELS)
        with pytest.raises(RegistryError, match="single manifest"):
            await annotate_index(client, repo, ["2.4.0", "latest"], ANNOTATIONS)
        assert await client.list_tags(repo) == ["2.4.0"]


async def test_annotate_index_needs_a_tag(registry: RegistryServer) -> None:
    async with client_for(registry) as client:
        with pytest.raises(ValueError, match="at least one tag"):
            await annotate_index(client, "a/b", [], ANNOTATIONS)


# --- the real registry with basic auth ------------------------------------------------------


async def test_basic_auth_with_right_credentials(auth_registry: RegistryServer, owner: str) -> None:
    repo = f"{owner}/{API}"
    async with client_for(auth_registry) as client:
        assert await client.list_tags(repo) == []
        digest = await push_release_image(client, repo, ["2.4.0", "latest"], PLATFORMS, LABELS)
        assert sorted(await client.list_tags(repo)) == ["2.4.0", "latest"]
        assert (await client.get_manifest(repo, "latest")).digest == digest


async def test_basic_auth_answers_concurrent_first_requests(
    auth_registry: RegistryServer, owner: str
) -> None:
    # Both requests go out before either learns that the registry wants basic credentials.
    async with client_for(auth_registry) as client:
        tags = await gather(
            {name: partial(client.list_tags, f"{owner}/{name}") for name in ("api", "worker")}
        )

    assert tags == {"api": [], "worker": []}


async def test_basic_auth_with_wrong_password(auth_registry: RegistryServer, owner: str) -> None:
    wrong = "wrong-" + (auth_registry.password or "")
    async with client_for(auth_registry, username="releaser", password=wrong) as client:
        with pytest.raises(RegistryError) as caught:
            await client.list_tags(f"{owner}/{API}")
    message = str(caught.value)
    assert caught.value.status == 401
    assert f"registry {auth_registry.host}: GET tags of {owner}/{API} failed: 401" in message
    assert "--username/--password" in message
    assert wrong not in message
    assert wrong not in repr(caught.value)


async def test_basic_auth_without_credentials(auth_registry: RegistryServer, owner: str) -> None:
    async with RegistryClient(auth_registry.host) as client:
        with pytest.raises(RegistryError, match="wants credentials") as caught:
            await client.list_tags(f"{owner}/{API}")
    assert caught.value.status == 401


def test_repr_hides_password() -> None:
    client = RegistryClient("ghcr.io", username="bot", password="hunter2-token")
    assert "hunter2-token" not in repr(client)
    assert "bot" in repr(client)
    assert "password=<set>" in repr(client)


# --- GHCR emulated: bearer tokens, schemes, pagination ----------------------------------------


def ghcr(
    log: list[httpx.Request],
    *,
    credentials: tuple[str, str] | None = None,
    token_key: str = "token",
    routes: Callable[[httpx.Request], httpx.Response] | None = None,
) -> httpx.MockTransport:
    """A GHCR look-alike: 401 Bearer challenges, a token endpoint, then the API."""

    def handle(request: httpx.Request) -> httpx.Response:
        log.append(request)
        if request.url.path == "/token":
            return token(request)
        scope_actions = "pull" if request.method in ("GET", "HEAD") else "pull,push"
        expected = f"Bearer tok:{GHCR_REPO}:{scope_actions}"
        if request.headers.get("authorization") != expected:
            challenge = GHCR_CHALLENGE.format(GHCR_REPO, scope_actions)
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if routes is not None:
            return routes(request)
        return httpx.Response(200, json={"name": GHCR_REPO, "tags": ["2.4.0", "latest"]})

    def token(request: httpx.Request) -> httpx.Response:
        if credentials is not None:
            pair = base64.b64encode(":".join(credentials).encode()).decode()
            if request.headers.get("authorization") != f"Basic {pair}":
                return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED"}]})
        scope = request.url.params.get_list("scope")[0]
        return httpx.Response(200, json={token_key: f"tok:{scope.removeprefix('repository:')}"})

    return httpx.MockTransport(handle)


async def test_bearer_token_flow_with_credentials() -> None:
    log: list[httpx.Request] = []
    transport = ghcr(log, credentials=("bot", "ghp-secret"))
    async with RegistryClient(
        "ghcr.io", username="bot", password="ghp-secret", transport=transport
    ) as client:
        assert await client.list_tags(GHCR_REPO) == ["2.4.0", "latest"]
        assert await client.list_tags(GHCR_REPO) == ["2.4.0", "latest"]
    challenge, token_request, retry, cached = log
    assert challenge.headers.get("authorization") is None
    assert str(token_request.url).startswith("https://ghcr.io/token?")
    assert token_request.url.params["service"] == "ghcr.io"
    assert token_request.url.params["scope"] == f"repository:{GHCR_REPO}:pull"
    assert token_request.headers["authorization"].startswith("Basic ")
    assert retry.headers["authorization"] == f"Bearer tok:{GHCR_REPO}:pull"
    assert cached.headers["authorization"] == f"Bearer tok:{GHCR_REPO}:pull"
    assert all(request.url.scheme == "https" for request in log)


async def test_anonymous_bearer_token_with_access_token_key() -> None:
    log: list[httpx.Request] = []
    async with RegistryClient("ghcr.io", transport=ghcr(log, token_key="access_token")) as client:
        assert await client.list_tags(GHCR_REPO) == ["2.4.0", "latest"]
    token_request = log[1]
    assert token_request.url.path == "/token"
    assert "authorization" not in token_request.headers
    assert log[2].headers["authorization"] == f"Bearer tok:{GHCR_REPO}:pull"


async def test_push_asks_for_a_push_scope() -> None:
    log: list[httpx.Request] = []
    raw = build_image("linux/amd64", LABELS).manifest

    def routes(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"Docker-Content-Digest": digest_of(raw)})

    transport = ghcr(log, credentials=("bot", "ghp-secret"), routes=routes)
    async with RegistryClient(
        "ghcr.io", username="bot", password="ghp-secret", transport=transport
    ) as client:
        assert await client.put_manifest(GHCR_REPO, "2.4.0", raw, OCI_MANIFEST) == digest_of(raw)
    token_request = next(request for request in log if request.url.path == "/token")
    assert token_request.url.params["scope"] == f"repository:{GHCR_REPO}:pull,push"
    assert log[-1].headers["content-type"] == OCI_MANIFEST


async def test_token_refused_names_no_password() -> None:
    log: list[httpx.Request] = []
    transport = ghcr(log, credentials=("bot", "right"))
    async with RegistryClient(
        "ghcr.io", username="bot", password="wrong-ghp-secret", transport=transport
    ) as client:
        with pytest.raises(RegistryError) as caught:
            await client.list_tags(GHCR_REPO)
    message = str(caught.value)
    assert message.startswith(f"registry ghcr.io: GET tags of {GHCR_REPO}: token request")
    assert "401" in message
    assert "--username/--password" in message
    assert "wrong-ghp-secret" not in message


async def test_plain_http_token_realm_is_refused() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        challenge = 'Bearer realm="http://evil.example/token",service="ghcr.io"'
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})

    transport = httpx.MockTransport(handle)
    async with RegistryClient("ghcr.io", username="u", password="p", transport=transport) as c:
        with pytest.raises(RegistryError, match="not HTTPS"):
            await c.list_tags(GHCR_REPO)


@pytest.mark.parametrize(
    ("host", "scheme"),
    [
        ("ghcr.io", "https"),
        ("registry.example.com:5000", "https"),
        ("127.0.0.1:5000", "http"),
        ("localhost:5000", "https"),
        ("127.attacker.example:5000", "https"),
        ("127.0.0.2:5000", "http"),
        ("[::1]:5000", "http"),
    ],
)
async def test_scheme_is_https_except_on_loopback(host: str, scheme: str) -> None:
    seen: list[httpx.URL] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"name": "a/b", "tags": []})

    async with RegistryClient(host, transport=httpx.MockTransport(handle)) as client:
        assert await client.list_tags("a/b") == []
    assert [str(url) for url in seen] == [f"{scheme}://{host}/v2/a/b/tags/list"]


async def test_link_pagination_as_ghcr_sends_it() -> None:
    pages = {"": ["1.0.0", "1.1.0"], "1.1.0": ["2.0.0", "latest"], "latest": ["zz"]}

    def handle(request: httpx.Request) -> httpx.Response:
        last = request.url.params.get("last", "")
        tags = pages[last]
        headers = {}
        if tags[-1] in pages:
            link = f"/v2/{GHCR_REPO}/tags/list?last={tags[-1]}&n=2"
            headers["Link"] = f'<{link}>; rel="next"'
        return httpx.Response(200, json={"tags": tags}, headers=headers)

    async with RegistryClient("ghcr.io", transport=httpx.MockTransport(handle)) as client:
        tags = await client.list_tags(GHCR_REPO, page_size=2)
    assert tags == ["1.0.0", "1.1.0", "2.0.0", "latest", "zz"]


async def test_other_404_on_tags_is_an_error_not_empty() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="page not found")

    async with RegistryClient("ghcr.io", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(RegistryError, match="404"):
            await client.list_tags(GHCR_REPO)


async def test_wrong_content_digest_is_refused() -> None:
    raw = build_image("linux/amd64", LABELS).manifest

    def handle(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest_of(b"other")}
        return httpx.Response(200, content=raw, headers=headers)

    async with RegistryClient("ghcr.io", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(RegistryError, match="not sha256:"):
            await client.get_manifest(GHCR_REPO, "2.4.0")
        with pytest.raises(RegistryError, match="has digest"):
            await client.get_blob(GHCR_REPO, digest_of(b"something else"))


async def test_docker_media_type_and_error_body_scrubbed() -> None:
    config = {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2}
    config["digest"] = digest_of(b"{}")
    raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": config}).encode()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            assert request.headers["accept"] == ", ".join(MANIFEST_TYPES)
            return httpx.Response(200, content=raw, headers={"Content-Type": DOCKER_MANIFEST})
        return httpx.Response(400, json={"errors": [{"code": "X", "message": "pw hunter22"}]})

    transport = httpx.MockTransport(handle)
    async with RegistryClient(
        "ghcr.io", username="u", password="hunter22", transport=transport
    ) as c:
        manifest = await c.get_manifest(GHCR_REPO, "1.0.0")
        with pytest.raises(RegistryError) as caught:
            await c.put_manifest(GHCR_REPO, "1.0.0", raw, DOCKER_MANIFEST)
    assert manifest == Manifest(digest=digest_of(raw), media_type=DOCKER_MANIFEST, raw=raw)
    assert "hunter22" not in str(caught.value)
    assert caught.value.code == "X"


def test_split_reference() -> None:
    digest = digest_of(b"x")
    assert split_reference("ghcr.io/steinbeck/qm-nmr-calc-api:2.4.0") == (
        "ghcr.io",
        "steinbeck/qm-nmr-calc-api",
        "2.4.0",
    )
    assert split_reference(f"127.0.0.1:5000/a/b@{digest}") == ("127.0.0.1:5000", "a/b", digest)
    assert split_reference("localhost:5000/a/b:latest") == ("localhost:5000", "a/b", "latest")
    bad_references = (
        "steinbeck/api:1",
        "ghcr.io/a/b",
        "ghcr.io/A/b:1",
        "ghcr.io/a/b:1+x",
        "ghcr.io/a/b:1\n",
        "ghcr.io/a/b\n:1",
        "https://ghcr.io/a/b:1",
    )
    for bad in bad_references:
        with pytest.raises(ValueError, match="accepted"):
            split_reference(bad)


FAST = Limits(read_timeout=1.0, deadline=5.0, retry_pauses=(0.0, 0.0, 0.0), max_retry_after=0.1)


async def test_a_read_answered_5xx_is_sent_again_and_a_post_is_not() -> None:
    """A registry under concurrent writes can fail a read of a tag being written (distribution
    answers 500 UNKNOWN): reads and idempotent writes are repeated a few times; a POST never."""
    raw = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )
    answers = {"GET": [500, 503, 200], "PUT": [500, 201], "POST": [500]}
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        status = answers[request.method].pop(0)
        if status == 200:
            return httpx.Response(200, content=raw, headers={"Content-Type": OCI_INDEX})
        return httpx.Response(status, json={"errors": [{"code": "UNKNOWN", "message": "x"}]})

    transport = httpx.MockTransport(handler)
    async with RegistryClient("127.0.0.1:1", transport=transport, limits=FAST) as client:
        manifest = await client.get_manifest("a/b", "1.0.0")
        assert manifest.raw == raw
        assert await client.put_manifest("a/b", "1.0.0", raw, OCI_INDEX) == digest_of(raw)
        with pytest.raises(RegistryError, match="500"):
            await client.session.request(
                "POST",
                client.session.base_url.join("/v2/a/b/blobs/uploads/"),
                repository="a/b",
                actions="pull,push",
                operation="POST upload",
                ok=frozenset({202}),
                body=ERROR_BODY,
                idempotent=False,
            )
    assert seen == ["GET", "GET", "GET", "PUT", "PUT", "POST"]


async def test_a_read_that_keeps_failing_fails_after_the_last_repeat() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(500, json={"errors": [{"code": "UNKNOWN", "message": "x"}]})

    transport = httpx.MockTransport(handler)
    async with RegistryClient("127.0.0.1:1", transport=transport, limits=FAST) as client:
        with pytest.raises(RegistryError, match="500"):
            await client.get_manifest("a/b", "1.0.0")
    assert len(calls) == 4


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
