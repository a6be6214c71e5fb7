"""A misbehaving registry on 127.0.0.1 whose behaviour each test (or benchmark) chooses.

``HostileRegistry(handler)`` listens on a free loopback port in a thread of its own and hands
every request to ``handler(request, reply)``, which may answer properly (``reply.send``), write
raw bytes, drip them, or stream without end; the server stops every such loop when it closes.
``release_store(plan)`` builds what a correct registry serves for a release, and ``SCENARIOS``
names one handler per class of misbehaviour, each wrapping that store.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType

from pipeline.oci.client import OCI_INDEX, OCI_MANIFEST
from pipeline.rules.plan import ReleasePlan
from pipeline.rules.references import repository_path

from tests.support.oci_images import build_image, build_index, sha256_digest

LOOPBACK = "127.0.0.1"
MAX_REQUEST_HEAD = 64 * 1024
REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    307: "Temporary Redirect",
    401: "Unauthorized",
}


@dataclass(frozen=True)
class Request:
    """One request as the server read it."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query."""
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        """The query of the target, without ``?``."""
        return self.target.partition("?")[2]


class Reply:
    """Writes one answer on a connection; every write stops once the server closes."""

    def __init__(self, connection: socket.socket, stopping: threading.Event) -> None:
        self.connection = connection
        self.stopping = stopping

    def send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        """A complete answer with Content-Length."""
        all_headers = {"Content-Length": str(len(body)), **(headers or {})}
        self.head(status, all_headers, reason=reason)
        self.raw(body)

    def json(self, status: int, document: object, headers: dict[str, str] | None = None) -> None:
        """A JSON answer."""
        body = json.dumps(document).encode()
        self.send(status, body, {"Content-Type": "application/json", **(headers or {})})

    def head(self, status: int, headers: dict[str, str], *, reason: str | None = None) -> None:
        """The status line and headers only."""
        lines = [f"HTTP/1.1 {status} {reason or REASONS.get(status, 'Status')}"]
        lines += [f"{key}: {value}" for key, value in {"Connection": "close", **headers}.items()]
        self.raw(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def raw(self, data: bytes) -> None:
        """Bytes as they are."""
        if not self.stopping.is_set():
            self.connection.sendall(data)

    def drip(self, data: bytes, every: float) -> None:
        """``data`` one byte at a time, ``every`` seconds apart."""
        for byte in data:
            if self.stopping.wait(every):
                return
            self.raw(bytes([byte]))

    def endless_chunks(self, chunk: bytes) -> None:
        """A chunked body that never ends (until the client goes or the server stops)."""
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        while not self.stopping.is_set():
            self.raw(frame)


Handler = Callable[[Request, Reply], None]


@dataclass
class HostileRegistry:
    """A threaded HTTP server on 127.0.0.1 answering with ``handler``; a context manager."""

    handler: Handler
    address: str = LOOPBACK
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stopping = threading.Event()
        self._listener = socket.create_server((self.address, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    @property
    def host(self) -> str:
        """``ADDRESS:PORT``, as ``--registry`` takes it."""
        return f"{self.address}:{self.port}"

    def __enter__(self) -> HostileRegistry:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        """Accept connections until stopped, one thread each."""
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, connection: socket.socket) -> None:
        """Read one request, let the handler answer it, close the connection."""
        with connection:
            connection.settimeout(5)
            try:
                request = read_request(connection)
                self.requests.append(request)
                self.handler(request, Reply(connection, self._stopping))
            except OSError:
                return  # the client went away: what some scenarios are about


def read_request(connection: socket.socket) -> Request:
    """One HTTP/1.1 request with a Content-Length body (what httpx sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk or len(data) > MAX_REQUEST_HEAD:
            raise ConnectionError("request head incomplete")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    return Request(method=method, target=target, headers=headers, body=body)


# --- a correct registry's content for a release ----------------------------------------------

Store = dict[str, tuple[str, bytes]]
"""URL path -> (content type, body), as a correct registry serves them."""


def release_store(plan: ReleasePlan) -> Store:
    """Tags, manifests and configs of ``plan`` as published correctly."""
    store: Store = {}
    for image in plan.images:
        path = repository_path(image.repository)
        entries = []
        for platform in image.platforms:
            built = build_image(platform, image.labels)
            store[f"/v2/{path}/blobs/{sha256_digest(built.config)}"] = (
                "application/json",
                built.config,
            )
            store[f"/v2/{path}/manifests/{built.digest}"] = (OCI_MANIFEST, built.manifest)
            entries.append((platform, built.digest, len(built.manifest)))
        if image.multi_platform:
            top, media_type = build_index(entries, image.index_annotations), OCI_INDEX
        else:
            top, media_type = built.manifest, OCI_MANIFEST
        for reference in (sha256_digest(top), *image.tags):
            store[f"/v2/{path}/manifests/{reference}"] = (media_type, top)
        tags = json.dumps({"name": path, "tags": list(image.tags)}).encode()
        store[f"/v2/{path}/tags/list"] = ("application/json", tags)
    return store


def serve(store: Store) -> Handler:
    """A handler answering as a correct registry holding ``store``."""

    def handle(request: Request, reply: Reply) -> None:
        if request.path == "/v2/":
            reply.json(200, {})
            return
        found = store.get(request.path)
        if found is None:
            code = "NAME_UNKNOWN" if request.path.endswith("/tags/list") else "MANIFEST_UNKNOWN"
            reply.json(404, {"errors": [{"code": code, "message": "unknown"}]})
            return
        content_type, body = found
        headers = {"Content-Type": content_type, "Docker-Content-Digest": sha256_digest(body)}
        reply.send(200, b"" if request.method == "HEAD" else body, headers)

    return handle


def on(kind: str, store: Store, misbehave: Handler) -> Handler:
    """``serve(store)``, except that requests of ``kind`` get ``misbehave``.

    Kinds: ``tags`` (tags/list), ``top`` (manifests by tag), ``child`` (manifests by digest),
    ``config`` (blobs), ``any``.
    """
    correct = serve(store)

    def handle(request: Request, reply: Reply) -> None:
        if request.path != "/v2/" and matches(kind, request.path):
            misbehave(request, reply)
        else:
            correct(request, reply)

    return handle


def matches(kind: str, path: str) -> bool:
    """Whether ``path`` is a request of ``kind`` (see :func:`on`)."""
    reference = path.rsplit("/", 1)[-1]
    return {
        "tags": path.endswith("/tags/list"),
        "top": "/manifests/" in path and not reference.startswith("sha256:"),
        "child": "/manifests/sha256:" in path,
        "config": "/blobs/" in path,
        "any": True,
    }[kind]


# --- misbehaviours ----------------------------------------------------------------------------


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    """Always answer ``code`` with ``body``."""
    return lambda _request, reply: reply.send(code, body, headers)


def document(content_type: str, body: bytes, digest: str | None = None) -> Handler:
    """Always answer 200 with ``body`` as ``content_type`` (and a Docker-Content-Digest)."""
    headers = {"Content-Type": content_type, "Docker-Content-Digest": digest or sha256_digest(body)}
    return lambda _request, reply: reply.send(200, body, headers)


def endless(content_type: str = "application/json") -> Handler:
    """A chunked 200 answer that never ends."""

    def handle(_request: Request, reply: Reply) -> None:
        reply.head(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked"})
        reply.endless_chunks(b"[" * 65536)

    return handle


def drip(every: float) -> Handler:
    """Headers at once, then a body one byte every ``every`` seconds."""

    def handle(_request: Request, reply: Reply) -> None:
        body = json.dumps({"tags": ["2.4.0"] * 1000}).encode()
        reply.head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        reply.drip(body, every)

    return handle


def endless_pages(store: Store) -> Handler:
    """Every tags page links to one more page, for ever."""

    def handle(request: Request, reply: Reply) -> None:
        number = int(request.query.removeprefix("last=") or 0) if "last=" in request.query else 0
        link = f'<{request.path}?last={number + 1}>; rel="next"'
        reply.json(200, {"tags": [f"x{number}"]}, {"Link": link})

    return on("tags", store, handle)


def pause_then_answer(seconds: float, handler: Handler) -> Handler:
    """``handler``, after ``seconds`` without a byte."""

    def handle(request: Request, reply: Reply) -> None:
        time.sleep(seconds)
        handler(request, reply)

    return handle


def scenarios(store: Store) -> Iterator[tuple[str, Handler]]:
    """One named handler per class of misbehaviour, for the CLI tests and the benchmark."""
    index_path = next(path for path, (kind, _) in store.items() if kind == OCI_INDEX)
    index = json.loads(store[index_path][1])
    broken = {**index, "manifests": "not a list"}
    yield "500-html", on("any", store, status(500, b"<html>oops</html>"))
    yield "503-retry-after-3600", on("any", store, status(503, b"", {"Retry-After": "3600"}))
    yield "401-no-challenge", on("child", store, status(401, b"no"))
    yield "invalid-json-manifest", on("top", store, document(OCI_INDEX, b"{not json"))
    yield "wrong-shape-index", on("top", store, document(OCI_INDEX, json.dumps(broken).encode()))
    yield "config-not-config", on("config", store, document("application/json", b"[1,2]"))
    yield "wrong-content-digest", on("top", store, document(OCI_INDEX, b"{}", sha256_digest(b"x")))
    yield "5-MiB-manifest", on("top", store, document(OCI_INDEX, b" " * (5 * 1024 * 1024)))
    yield "endless-chunked-tags", on("tags", store, endless())
    yield "endless-chunked-manifest", on("top", store, endless(OCI_INDEX))
    yield "endless-chunked-error", on("config", store, _endless_error)
    yield "endless-pagination", endless_pages(store)
    yield "drip-tags", on("tags", store, drip(2.0))
    yield "drip-config", on("config", store, drip(2.0))


def _endless_error(_request: Request, reply: Reply) -> None:
    """A 500 whose body never ends."""
    reply.head(500, {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
    reply.endless_chunks(b"e" * 65536)
