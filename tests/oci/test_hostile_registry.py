"""The registry client and ``verify`` against misbehaving registries on 127.0.0.1.

Each test chooses how the server in ``tests/support/hostile_registry.py`` misbehaves: bodies that
never end or drip, pagination without end, retries, malformed documents and digests, and bad
local input. Deadlines and pauses are shortened (``FAST``) so the suite stays quick;
``bench/verify_hostile.py`` runs the same scenarios with the real limits and prints their wall
time and memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST, Limits, RegistryClient, RegistryError
from pipeline.oci.transport import CONFIG_BODY, MANIFEST_BODY, TAG_LIST_BODY, BodyKind
from pipeline.rules.plan import make_plan

from pipeline import __main__ as cli
from tests.support.hostile_registry import (
    Handler,
    HostileRegistry,
    Reply,
    Request,
    document,
    drip,
    endless,
    endless_pages,
    on,
    release_store,
    scenarios,
    serve,
    status,
)
from tests.support.oci_images import build_image, sha256_digest

pytestmark = pytest.mark.anyio

TAG = "v2.4.0"
OWNER = "hostile"
REPO = f"{OWNER}/qm-nmr-calc-api"
FAST = Limits(read_timeout=1.0, deadline=2.0, retry_pauses=(0.05, 0.05), max_retry_after=0.3)


def release_registry(handler_of: object = None) -> HostileRegistry:
    """A server that serves the release of TAG correctly (the plan needs the port first)."""
    server = HostileRegistry(serve({}))
    store = release_store(make_plan(TAG, owner=OWNER, registry=server.host, overwrite=True))
    server.handler = serve(store)
    return server


def verify_in_process(
    host: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str, float]:
    """``python -m pipeline verify`` run in this process with FAST limits."""
    monkeypatch.setattr("pipeline.oci.transport.DEFAULT_LIMITS", FAST)
    monkeypatch.setattr("pipeline.__main__.VERIFY_DEADLINE", 8.0)
    monkeypatch.delenv("REGISTRY_PASSWORD", raising=False)
    started = time.monotonic()
    code = cli.main(["verify", TAG, "--registry", host, "--owner", OWNER])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    return code, out, err, elapsed


def target(host: str) -> list[str]:
    """``--registry HOST --owner OWNER``."""
    return ["--registry", host, "--owner", OWNER]


def scenario_names() -> Iterator[str]:
    """The names of the benchmark's scenarios."""
    return (name for name, _ in scenarios(release_store(make_plan(TAG, owner=OWNER))))


# --- verify ends cleanly, quickly, on every class of misbehaviour -----------------------------


def test_a_correct_release_verifies(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with release_registry() as server:
        code, out, err, _ = verify_in_process(server.host, monkeypatch, capsys)
    assert (code, err) == (0, ""), out
    assert "MISMATCH" not in out


@pytest.mark.parametrize("name", list(scenario_names()))
def test_verify_on_a_hostile_registry_exits_1_with_one_line_per_problem(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with release_registry() as server:
        store = release_store(make_plan(TAG, owner=OWNER, registry=server.host, overwrite=True))
        server.handler = dict(scenarios(store))[name]
        code, out, err, elapsed = verify_in_process(server.host, monkeypatch, capsys)
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert all(line.startswith("cannot verify: registry ") for line in err.splitlines()), err
    assert err or "MISMATCH" in out
    assert elapsed < 10.0


@pytest.mark.parametrize("name", ["wrong-shape-index", "endless-chunked-manifest", "500-html"])
def test_verify_as_a_process_prints_no_traceback(name: str) -> None:
    """With the real limits, in a real process: the user's view."""
    with release_registry() as server:
        store = release_store(make_plan(TAG, owner=OWNER, registry=server.host, overwrite=True))
        server.handler = dict(scenarios(store))[name]
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "verify", TAG, *target(server.host)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 45


# --- sizes ------------------------------------------------------------------------------------


async def test_a_manifest_over_4_mib_is_refused_without_reading_it_all() -> None:
    with HostileRegistry(document(OCI_INDEX, b" " * (5 * 1024 * 1024))) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError, match="over 4194304 bytes, the limit for a manifest"):
                await client.get_manifest(REPO, "2.4.0")


def padded_json(document: dict[str, object], size: int) -> bytes:
    """``document`` as JSON, padded with trailing spaces to exactly ``size`` bytes."""
    body = json.dumps(document).encode()
    return body + b" " * (size - len(body))


def answer(body: bytes, content_type: str, *, chunked: bool) -> Handler:
    """200 with ``body``, with a Content-Length or chunked (then only reading tells its size)."""
    headers = {"Content-Type": content_type, "Docker-Content-Digest": sha256_digest(body)}

    def handle(_request: Request, reply: Reply) -> None:
        if not chunked:
            reply.send(200, body, headers)
            return
        reply.head(200, {**headers, "Transfer-Encoding": "chunked"})
        for start in range(0, len(body), 65536):
            piece = body[start : start + 65536]
            reply.raw(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        reply.raw(b"0\r\n\r\n")

    return handle


EMPTY_CONFIG = {
    "mediaType": "application/vnd.oci.image.config.v1+json",
    "digest": sha256_digest(b"{}"),
    "size": 2,
}
MANIFEST = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": EMPTY_CONFIG, "layers": []}
BOUNDED_READS = [
    pytest.param(MANIFEST_BODY, OCI_MANIFEST, MANIFEST, id="manifest"),
    pytest.param(CONFIG_BODY, "application/json", {"os": "linux"}, id="image-config"),
    pytest.param(TAG_LIST_BODY, "application/json", {"name": REPO, "tags": []}, id="tag-list"),
]


async def read_kind(client: RegistryClient, kind: BodyKind, body: bytes) -> object:
    """The client's read of an answer of ``kind``."""
    if kind is MANIFEST_BODY:
        return await client.get_manifest(REPO, "2.4.0")
    if kind is CONFIG_BODY:
        return await client.get_json_blob(REPO, sha256_digest(body))
    return await client.list_tags(REPO)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("kind", "content_type", "document"), BOUNDED_READS)
async def test_each_kind_of_answer_is_read_up_to_its_limit_and_refused_one_byte_over(
    kind: BodyKind, content_type: str, document: dict[str, object], *, chunked: bool
) -> None:
    """The limits are the documented ones (4 MiB, 8 MiB, 4 MiB): exactly at it is read whole."""
    assert kind.limit == {"manifest": 4, "image config": 8, "tag list page": 4}[kind.name] * 2**20
    at_limit = padded_json(document, kind.limit)
    with HostileRegistry(answer(at_limit, content_type, chunked=chunked)) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            await read_kind(client, kind, at_limit)
    over = padded_json(document, kind.limit + 1)
    with HostileRegistry(answer(over, content_type, chunked=chunked)) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError) as caught:
                await read_kind(client, kind, over)
    assert f"answer is over {kind.limit} bytes, the limit for a {kind.name}" in str(caught.value)


@pytest.mark.parametrize(("kind", "content_type", "document"), BOUNDED_READS)
async def test_a_declared_size_over_the_limit_is_refused_before_any_body_arrives(
    kind: BodyKind, content_type: str, document: dict[str, object]
) -> None:
    """The server announces one byte too many and then sends nothing: no wait for the body."""

    def announce_only(_request: Request, reply: Reply) -> None:
        reply.head(200, {"Content-Type": content_type, "Content-Length": str(kind.limit + 1)})
        reply.stopping.wait(FAST.deadline)

    with HostileRegistry(announce_only) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError) as caught:
                await read_kind(client, kind, padded_json(document, kind.limit + 1))
    assert f"answer is over {kind.limit} bytes, the limit for a {kind.name}" in str(caught.value)


@pytest.mark.parametrize("kind", ["tags", "top"])
async def test_an_endless_chunked_body_is_cut_at_the_limit(kind: str) -> None:
    with HostileRegistry(on(kind, {}, endless())) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            started = time.monotonic()
            read = client.list_tags(REPO) if kind == "tags" else client.get_manifest(REPO, "2.4.0")
            with pytest.raises(RegistryError, match=r"over .* bytes, the limit for a"):
                await read
    assert time.monotonic() - started < FAST.deadline


async def test_an_endless_error_body_is_cut_and_quoted_shortly() -> None:
    def handle(_request: Request, reply: Reply) -> None:
        reply.head(500, {"Transfer-Encoding": "chunked"})
        reply.endless_chunks(b"e" * 65536)

    with HostileRegistry(handle) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError, match="500") as caught:
                await client.get_manifest(REPO, "2.4.0")
    assert len(str(caught.value)) < 500


# --- time -------------------------------------------------------------------------------------


async def test_a_dripping_server_meets_the_deadline() -> None:
    with HostileRegistry(drip(0.2)) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            started = time.monotonic()
            with pytest.raises(RegistryError, match="no complete answer within 2 s"):
                await client.list_tags(REPO)
    assert time.monotonic() - started < FAST.deadline + 1


async def test_endless_pagination_stops_at_the_page_cap() -> None:
    limits = Limits(deadline=20.0, max_tag_pages=7)
    with HostileRegistry(endless_pages({})) as server:
        async with RegistryClient(server.host, limits=limits) as client:
            with pytest.raises(RegistryError, match="more than 7 pages"):
                await client.list_tags(REPO)
        assert len(server.requests) == 7


@pytest.mark.parametrize(
    ("link", "refused"),
    [
        (f"</v2/{OWNER}/other/tags/list?last=a>", "pagination link to .*/other/tags/list refused"),
        ("<https://evil.example/v2/hostile/qm-nmr-calc-api/tags/list>", "refused"),
        ("<http://[::1/x>", "malformed pagination Link"),
        (f"</v2/{REPO}/tags/list>", "loop back"),
    ],
)
async def test_a_bad_pagination_link_is_refused(link: str, refused: str) -> None:
    handler = status(200, b'{"tags":["1.0.0"]}', {"Link": f'{link}; rel="next"'})
    with HostileRegistry(handler) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError, match=refused):
                await client.list_tags(REPO)


# --- retries ----------------------------------------------------------------------------------


async def test_retry_after_is_honoured_up_to_its_cap() -> None:
    answers = iter([status(429, b"", {"Retry-After": "3600"}), status(200, b'{"tags":["1.0.0"]}')])

    def handle(request: Request, reply: Reply) -> None:
        next(answers)(request, reply)

    with HostileRegistry(handle) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            started = time.monotonic()
            assert await client.list_tags(REPO) == ["1.0.0"]
    assert FAST.max_retry_after <= time.monotonic() - started < FAST.deadline


async def test_nothing_is_retried_after_the_deadline() -> None:
    limits = Limits(deadline=1.0, retry_pauses=(5.0, 5.0), max_retry_after=10.0)
    with HostileRegistry(status(503)) as server:
        async with RegistryClient(server.host, limits=limits) as client:
            started = time.monotonic()
            with pytest.raises(RegistryError, match="503"):
                await client.get_manifest(REPO, "2.4.0")
        assert len(server.requests) == 1
    assert time.monotonic() - started < 1.0


async def test_put_manifest_by_tag_is_retried_with_the_same_bytes() -> None:
    raw = build_image("linux/amd64", {}).manifest
    answers = iter([status(500), status(201, b"", {"Docker-Content-Digest": sha256_digest(raw)})])
    with HostileRegistry(lambda request, reply: next(answers)(request, reply)) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            assert await client.put_manifest(REPO, "latest", raw, OCI_MANIFEST) == sha256_digest(
                raw
            )
        assert [r.body for r in server.requests] == [raw, raw]


# --- malformed documents ----------------------------------------------------------------------

DIGEST = sha256_digest(b"x")
MALFORMED_INDEXES = {
    "list-for-object": [],
    "manifests-object": {"schemaVersion": 2, "manifests": {}},
    "null-annotations": {"schemaVersion": 2, "manifests": [], "annotations": None},
    "string-descriptor": {"schemaVersion": 2, "manifests": ["sha256:abc"]},
    "digest-not-digest": {"schemaVersion": 2, "manifests": [{"digest": "sha256:xyz", "size": 1}]},
    "digest-missing": {"schemaVersion": 2, "manifests": [{"size": 1}]},
    "platform-number": {
        "schemaVersion": 2,
        "manifests": [{"digest": DIGEST, "size": 1, "platform": {"os": 1}}],
    },
}


@pytest.mark.parametrize("name", list(MALFORMED_INDEXES))
async def test_a_malformed_index_is_a_registry_error(name: str) -> None:
    body = json.dumps(MALFORMED_INDEXES[name]).encode()
    with HostileRegistry(document(OCI_INDEX, body)) as server:
        async with RegistryClient(server.host, limits=FAST) as client:
            with pytest.raises(RegistryError, match="bad manifest"):
                await client.get_manifest(REPO, "2.4.0")


async def test_a_disagreeing_or_malformed_content_digest_is_refused() -> None:
    raw = build_image("linux/amd64", {}).manifest
    for claimed, match in ((DIGEST, "content has digest"), ("md5:x\x1b[2J", "is not a digest")):
        with HostileRegistry(document(OCI_MANIFEST, raw, claimed)) as server:
            async with RegistryClient(server.host, limits=FAST) as client:
                with pytest.raises(RegistryError, match=match) as caught:
                    await client.get_manifest(REPO, "2.4.0")
        assert str(caught.value).isprintable()


def test_verify_report_escapes_platforms_and_labels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with release_registry() as server:
        plan = make_plan(TAG, owner=OWNER, registry=server.host, overwrite=True)
        store = release_store(plan)
        config = json.dumps(
            {"architecture": "amd64\n::error::x", "os": "linux", "config": {"Labels": {}}}
        ).encode()
        server.handler = on("config", store, document("application/json", config))
        for path in [p for p in store if "/blobs/" in p]:
            store[path] = ("application/json", config)
        code, out, err, _ = verify_in_process(server.host, monkeypatch, capsys)
    assert code == 1, out + err
    assert not any(line.lstrip().startswith("::") for line in out.splitlines())


# --- bad local input --------------------------------------------------------------------------

BAD_REGISTRIES = [
    ("ghcr.io:65536", "port 65536"),
    ("256.1.1.1:5000", "IPv4"),
    ("[::1:5000", "registry"),
    ("[1::2::3]:5000", "IPv6"),
    ("bot:hunter2@ghcr.io", "user information"),
]


@pytest.mark.parametrize("command", ["plan", "verify"])
@pytest.mark.parametrize(("registry", "word"), BAD_REGISTRIES)
def test_an_unusable_registry_exits_2_with_one_line(
    command: str, registry: str, word: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([command, TAG, "--registry", registry]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert word in err
    assert "hunter2" not in err


@pytest.mark.parametrize("created", ["2016-12-31T23:59:60Z", "0000-01-01T00:00:00Z"])
def test_a_valid_time_datetime_cannot_hold_is_refused_saying_so(
    created: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["plan", TAG, "--created", created]) == 2
    assert "valid RFC 3339 time, but one this tool cannot hold" in capsys.readouterr().err


def test_an_in_memory_transport_is_still_bounded() -> None:
    """The size limit holds when a transport answers from memory, as tests' mocks do."""
    transport = httpx.MockTransport(lambda _r: httpx.Response(200, content=b" " * (5 << 20)))

    async def read() -> None:
        async with RegistryClient("ghcr.io", transport=transport, limits=FAST) as client:
            await client.get_manifest(REPO, "2.4.0")

    import anyio

    with pytest.raises(RegistryError, match="over 4194304"):
        anyio.run(read)
