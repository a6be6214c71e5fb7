"""Storing a blob (``RegistryClient.put_blob``): a HEAD first, then one POST and one PUT.

Against the real ``docker-registry``: the blob is stored and read back, an existing one is not
sent again, basic auth works; against scripted registries: a reported digest that is not the
blob's, an upload Location on another origin, and a failed upload are refused, and the POST and
PUT are never sent twice; on GHCR's token flow one push-scope token serves all three requests.
"""

from __future__ import annotations

import re

import httpx
import pytest
from pipeline.oci.client import Limits, RegistryClient, RegistryError, digest_of

from tests.support.hostile_registry import Handler, HostileRegistry, Reply, Request
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.anyio

DATA = b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}'
REPOSITORY = "steinbeck/qm-nmr-calc-api"


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


async def test_a_blob_is_stored_and_read_back_by_its_digest(
    registry: RegistryServer, owner: str
) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    transport = CountingTransport()
    async with RegistryClient(registry.host, transport=transport) as client:
        digest = await client.put_blob(repository, DATA)

        assert digest == digest_of(DATA)
        assert await client.get_blob(repository, digest) == DATA
    methods = [method for method, _ in transport.requests]
    assert methods == ["HEAD", "POST", "PUT", "GET"]


async def test_a_blob_already_there_is_not_sent_again(registry: RegistryServer, owner: str) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(registry.host) as client:
        await client.put_blob(repository, DATA)
    transport = CountingTransport()
    async with RegistryClient(registry.host, transport=transport) as client:
        assert await client.put_blob(repository, DATA) == digest_of(DATA)

    assert transport.requests == [("HEAD", f"/v2/{repository}/blobs/{digest_of(DATA)}")]


async def test_a_blob_is_stored_with_basic_auth(auth_registry: RegistryServer, owner: str) -> None:
    repository = f"{owner}/qm-nmr-calc-api"
    async with RegistryClient(
        auth_registry.host, username=auth_registry.username, password=auth_registry.password
    ) as client:
        digest = await client.put_blob(repository, b"")

        assert await client.get_blob(repository, digest) == b""


def upload(
    location: str = "/v2/steinbeck/qm-nmr-calc-api/blobs/uploads/u1?_state=s",
    put_status: int = 201,
    put_digest: str | None = None,
) -> Handler:
    """A registry without the blob that answers the upload as told."""

    def handle(request: Request, reply: Reply) -> None:
        if request.method == "HEAD":
            reply.send(404)
        elif request.method == "POST":
            reply.send(202, headers={"Location": location})
        else:
            digest = put_digest or digest_of(request.body)
            reply.send(put_status, headers={"Docker-Content-Digest": digest})

    return handle


async def test_the_put_goes_to_the_upload_location_with_the_digest() -> None:
    with HostileRegistry(upload()) as server:
        async with RegistryClient(server.host) as client:
            assert await client.put_blob(REPOSITORY, DATA) == digest_of(DATA)

    put = server.requests[-1]
    assert (put.method, put.path) == ("PUT", "/v2/steinbeck/qm-nmr-calc-api/blobs/uploads/u1")
    assert put.query == f"_state=s&digest={digest_of(DATA).replace(':', '%3A')}"
    assert put.body == DATA
    assert put.headers["content-type"] == "application/octet-stream"


async def test_a_reported_digest_that_is_not_the_blobs_is_refused() -> None:
    wrong = "sha256:" + "0" * 64
    with HostileRegistry(upload(put_digest=wrong)) as server:
        async with RegistryClient(server.host) as client:
            with pytest.raises(
                RegistryError, match=re.escape(f"registry reports digest '{wrong}'")
            ):
                await client.put_blob(REPOSITORY, DATA)


async def test_an_upload_location_on_another_origin_is_refused_before_sending() -> None:
    with HostileRegistry(upload(location="http://127.0.0.2:1/v2/upload")) as server:
        async with RegistryClient(server.host) as client:
            with pytest.raises(RegistryError, match=r"upload Location on 127\.0\.0\.2 refused"):
                await client.put_blob(REPOSITORY, DATA)

    assert [request.method for request in server.requests] == ["HEAD", "POST"]


async def test_a_failed_upload_is_named_and_not_sent_twice() -> None:
    with HostileRegistry(upload(put_status=500)) as server:
        async with RegistryClient(server.host) as client:
            with pytest.raises(RegistryError, match=r"PUT blob .* failed: 500"):
                await client.put_blob(REPOSITORY, DATA)

    assert [request.method for request in server.requests] == ["HEAD", "POST", "PUT"]


CHALLENGE = 'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:{}:pull,push"'


def ghcr_upload(log: list[httpx.Request], post_status: int = 202) -> httpx.MockTransport:
    """GHCR's token flow (push scope only) in front of an upload that works."""

    def handle(request: httpx.Request) -> httpx.Response:
        log.append(request)
        if request.url.path == "/token":
            scope = request.url.params["scope"].removeprefix("repository:")
            return httpx.Response(200, json={"token": f"tok:{scope}"})
        if request.headers.get("authorization") != f"Bearer tok:{REPOSITORY}:pull,push":
            return httpx.Response(401, headers={"WWW-Authenticate": CHALLENGE.format(REPOSITORY)})
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.method == "POST":
            upload = f"/v2/{REPOSITORY}/blobs/uploads/u1"
            return httpx.Response(post_status, headers={"Location": upload})
        return httpx.Response(201, headers={"Docker-Content-Digest": digest_of(request.content)})

    return httpx.MockTransport(handle)


async def test_one_push_scope_token_serves_the_head_post_and_put() -> None:
    log: list[httpx.Request] = []
    async with RegistryClient(
        "ghcr.io", username="bot", password="ghp-secret", transport=ghcr_upload(log)
    ) as client:
        assert await client.put_blob(REPOSITORY, DATA) == digest_of(DATA)

    tokens = [request for request in log if request.url.path == "/token"]
    assert [request.url.params["scope"] for request in tokens] == [
        f"repository:{REPOSITORY}:pull,push"
    ]
    assert [request.method for request in log if request.url.path != "/token"] == [
        "HEAD",  # refused once, before the token
        "HEAD",
        "POST",
        "PUT",
    ]


async def test_a_refused_upload_says_which_write_access_to_check() -> None:
    async with RegistryClient(
        "ghcr.io", username="bot", password="ghp-secret", transport=ghcr_upload([], 403)
    ) as client:
        with pytest.raises(RegistryError, match=r"POST blob upload to .* failed: 403") as refused:
            await client.put_blob(REPOSITORY, DATA)

    assert "Manage Actions access" in str(refused.value)
    assert "ghp-secret" not in str(refused.value)


async def test_the_head_is_asked_again_after_a_server_error() -> None:
    answers = iter([503, 503, 200])

    def handle(request: Request, reply: Reply) -> None:
        if request.method == "HEAD":
            reply.send(next(answers), headers={"Docker-Content-Digest": digest_of(DATA)})
        else:
            reply.send(500)

    with HostileRegistry(handle) as server:
        limits = Limits(retry_pauses=(0.0, 0.0, 0.0))
        async with RegistryClient(server.host, limits=limits) as client:
            assert await client.put_blob(REPOSITORY, DATA) == digest_of(DATA)

    assert [request.method for request in server.requests] == ["HEAD", "HEAD", "HEAD"]
