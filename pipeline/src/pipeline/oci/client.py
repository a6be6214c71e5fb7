"""An async client for the OCI distribution API: the tags, manifests and configs of a release.

    async with RegistryClient("ghcr.io", username=u, password=p) as client:
        await client.list_tags("steinbeck/qm-nmr-calc-api")           # [] if no such repository
        manifest = await client.get_manifest(repository, "2.4.0")     # digest-checked bytes
        config = await client.get_json_blob(repository, digest)       # an image config
        await client.put_manifest(repository, "latest", manifest.raw, manifest.media_type)
        await client.put_blob(repository, bundle)                      # unless already there

Every failure is a RegistryError whose one-line message names the registry, the operation and
the cause, holds no secret and no raw control character. Bounds (sizes, deadlines, retries) are
in ``transport``, authentication in ``auth``, the name grammar in ``names`` and document shapes
in ``documents``; this module re-exports what callers need.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from pipeline.oci.auth import Credentials
from pipeline.oci.documents import (
    ACCEPTED_TYPES,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    check_annotations,
    check_manifest,
    check_shape,
    parse_json_object,
    serialize_json,
)
from pipeline.oci.names import check_digest, check_reference, check_repository, digest_of, is_digest
from pipeline.oci.text import printable
from pipeline.oci.transport import (
    CONFIG_BODY,
    DEFAULT_LIMITS,
    ERROR_BODY,
    MANIFEST_BODY,
    TAG_LIST_BODY,
    Answer,
    BodyKind,
    Limits,
    RegistryError,
    RegistrySession,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "Limits",
    "Manifest",
    "RegistryClient",
    "RegistryError",
    "check_annotations",
    "digest_of",
    "serialize_json",
]

PULL = "pull"
PUSH = "pull,push"
"""Token scope actions: reading needs ``pull``; writing needs ``pull,push`` (as Docker asks)."""
_FOUND = frozenset({200})
_FOUND_OR_MISSING = frozenset({200, 404})
_STORED = frozenset({200, 201})
_UPLOAD_STARTED = frozenset({202})
_BLOB_STORED = frozenset({201})
BLOB_CONTENT_TYPE = "application/octet-stream"


class RegistryClient:
    """An OCI distribution API client for one registry: ``async with RegistryClient(...)``."""

    def __init__(
        self,
        registry: str,
        *,
        username: str | None = None,
        password: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        plain_http: bool = False,
        limits: Limits | None = None,
    ) -> None:
        """``plain_http`` allows HTTP beyond loopback: only for a throwaway registry service."""
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither (anonymous access)")
        self.session = RegistrySession(
            registry,
            Credentials(username, password),
            plain_http=plain_http,
            limits=limits,
            transport=transport,
        )
        """The bounded, authenticated HTTP session, for requests this client has no method for."""
        self.registry = self.session.registry
        self.username = username

    def __repr__(self) -> str:
        return f"RegistryClient(registry={self.registry!r}, {self.session.credentials!r})"

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.session.aclose()

    async def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repository``, following ``Link`` pagination; [] if it does not exist."""
        check_repository(repository)
        if page_size is not None and page_size < 1:
            raise ValueError(f"page_size {page_size} is not accepted; give a positive number")
        operation = f"GET tags of {repository}"
        url = self.session.base_url.join(f"/v2/{repository}/tags/list")
        if page_size is not None:
            url = url.copy_merge_params({"n": str(page_size)})
        tags: list[str] = []
        seen = {url}
        with self.session.deadline(operation):
            for page in range(self.session.limits.max_tag_pages):
                answer = await self._read(
                    url, repository, operation, _FOUND_OR_MISSING, TAG_LIST_BODY
                )
                if answer.status == 404:
                    return self._missing_repository(answer, operation, page)
                tags.extend(self._page_tags(answer, operation))
                next_url = self._next_page(answer, url, repository, operation)
                if next_url is None:
                    return list(dict.fromkeys(tags))
                if next_url in seen:
                    raise self.session.error(operation, "pagination links loop back", answer.status)
                seen.add(next_url)
                url = next_url
        pages = self.session.limits.max_tag_pages
        raise self.session.error(operation, f"more than {pages} pages of tags; refused as endless")

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index under tag or digest ``reference``, its digest verified."""
        manifest = await self.get_manifest_or_none(repository, reference)
        if manifest is None:
            raise self.session.error(
                f"GET manifest {repository}:{reference}", "404 not found", 404, "MANIFEST_UNKNOWN"
            )
        return manifest

    async def get_manifest_or_none(self, repository: str, reference: str) -> Manifest | None:
        """The manifest or index under ``reference``, or None if the registry has none (404).

        Its digest is checked against a digest reference and ``Docker-Content-Digest``, and its
        document against the shape of its media type.
        """
        check_repository(repository)
        check_reference(reference)
        operation = f"GET manifest {repository}:{reference}"
        url = self.session.base_url.join(f"/v2/{repository}/manifests/{reference}")
        answer = await self._read(
            url,
            repository,
            operation,
            _FOUND_OR_MISSING,
            MANIFEST_BODY,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if answer.status == 404:
            return None
        digest = self._verified_digest(answer, answer.body, operation, reference)
        media_type = self._manifest_type(answer, operation)
        return Manifest(digest=digest, media_type=media_type, raw=answer.body)

    async def put_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> str:
        """Store manifest ``raw`` under tag or digest ``reference``; returns its digest.

        Sent again after a 429 or 5xx: storing the same bytes under a tag is idempotent.
        """
        check_repository(repository)
        check_reference(reference)
        check_manifest(raw, media_type)
        digest = digest_of(raw)
        if is_digest(reference) and reference != digest:
            raise ValueError(f"manifest has digest {digest}; it cannot be stored as {reference}")
        operation = f"PUT manifest {repository}:{reference}"
        answer = await self.session.request(
            "PUT",
            self.session.base_url.join(f"/v2/{repository}/manifests/{reference}"),
            repository=repository,
            actions=PUSH,
            operation=operation,
            ok=_STORED,
            body=ERROR_BODY,
            idempotent=True,
            headers={"Content-Type": media_type},
            content=raw,
        )
        return self._verified_digest(answer, raw, operation, digest)

    async def get_blob(self, repository: str, digest: str) -> bytes:
        """The blob ``digest`` (at most an image config's size limit), its content checked."""
        check_repository(repository)
        check_digest(digest)
        operation = f"GET blob {repository}@{digest}"
        answer = await self._read(
            self.session.base_url.join(f"/v2/{repository}/blobs/{digest}"),
            repository,
            operation,
            _FOUND,
            CONFIG_BODY,
            follow_redirects=True,  # GHCR serves blobs from a CDN; credentials stay behind
        )
        actual = digest_of(answer.body, digest.partition(":")[0])
        if actual != digest:
            raise self.session.error(operation, f"content has digest {actual}")
        return answer.body

    async def put_blob(self, repository: str, data: bytes) -> str:
        """Store blob ``data`` in ``repository`` unless it is there already; returns its digest.

        A HEAD (push scope) finds an existing blob; otherwise one upload session (POST) takes the
        whole blob in one PUT ``?digest=``, as Docker's registry and GHCR accept. The HEAD is
        retried as reads are; the POST and PUT are not (a re-run finds what got stored). The
        digest the registry reports is checked against what was sent.
        """
        check_repository(repository)
        digest = digest_of(data)
        if await self._blob_exists(repository, digest):
            return digest
        location = await self._start_upload(repository)
        operation = f"PUT blob {repository}@{digest}"
        answer = await self.session.request(
            "PUT",
            location.copy_merge_params({"digest": digest}),
            repository=repository,
            actions=PUSH,
            operation=operation,
            ok=_BLOB_STORED,
            body=ERROR_BODY,
            idempotent=False,
            headers={"Content-Type": BLOB_CONTENT_TYPE},
            content=data,
        )
        self._check_blob_digest(answer, digest, operation)
        return digest

    async def _blob_exists(self, repository: str, digest: str) -> bool:
        """Whether ``repository`` holds blob ``digest`` (HEAD with push scope: no second token)."""
        operation = f"HEAD blob {repository}@{digest}"
        answer = await self.session.request(
            "HEAD",
            self.session.base_url.join(f"/v2/{repository}/blobs/{digest}"),
            repository=repository,
            actions=PUSH,
            operation=operation,
            ok=_FOUND_OR_MISSING,
            body=ERROR_BODY,
            idempotent=True,
        )
        if answer.status == 404:
            return False
        self._check_blob_digest(answer, digest, operation)
        return True

    async def _start_upload(self, repository: str) -> httpx.URL:
        """A new upload session's URL on this registry (from the POST's ``Location``)."""
        operation = f"POST blob upload to {repository}"
        answer = await self.session.request(
            "POST",
            self.session.base_url.join(f"/v2/{repository}/blobs/uploads/"),
            repository=repository,
            actions=PUSH,
            operation=operation,
            ok=_UPLOAD_STARTED,
            body=ERROR_BODY,
            idempotent=False,
        )
        location = answer.headers.get("location", "")
        try:
            url = self.session.base_url.join(location) if location else None
        except (httpx.InvalidURL, ValueError, TypeError):
            url = None
        if url is None:
            raise self.session.error(operation, "no usable upload Location", answer.status)
        if not self.session.same_origin(url):
            raise self.session.error(
                operation,
                f"upload Location on {printable(str(url.host))} refused; accepted: this registry",
                answer.status,
            )
        return url

    def _check_blob_digest(self, answer: Answer, digest: str, operation: str) -> None:
        """Refuse an answer whose ``Docker-Content-Digest`` is not the blob's digest."""
        header = answer.headers.get("docker-content-digest")
        if header is not None and header != digest:
            raise self.session.error(
                operation, f"registry reports digest {printable(header)[:80]!r}", answer.status
            )

    async def get_json_blob(self, repository: str, digest: str) -> dict[str, Any]:
        """A JSON object blob, such as an image config."""
        data = await self.get_blob(repository, digest)
        try:
            config: dict[str, Any] = parse_json_object(data, what=f"blob {digest}")
            return config
        except ValueError as exc:
            raise self.session.error(f"GET blob {repository}@{digest}", str(exc)) from None

    async def _read(
        self,
        url: httpx.URL,
        repository: str,
        operation: str,
        ok: frozenset[int],
        body: BodyKind,
        *,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = False,
    ) -> Answer:
        """A GET with pull scope, retried as reads are."""
        return await self.session.request(
            "GET",
            url,
            repository=repository,
            actions=PULL,
            operation=operation,
            ok=ok,
            body=body,
            idempotent=True,
            headers=headers,
            follow_redirects=follow_redirects,
        )

    def _missing_repository(self, answer: Answer, operation: str, page: int) -> list[str]:
        """[] for a 404 NAME_UNKNOWN on the first page; any other 404 is an error."""
        code, detail = self.session.error_code_and_detail(answer)
        if code == "NAME_UNKNOWN" and page == 0:
            return []
        raise self.session.error(operation, f"404 not found: {detail}", 404, code)

    def _page_tags(self, answer: Answer, operation: str) -> list[str]:
        """The tags of one tags/list page (``"tags": null`` is an empty repository)."""
        try:
            tags = parse_json_object(answer.body, what="tag list").get("tags")
        except ValueError as exc:
            raise self.session.error(operation, f"bad answer: {exc}", answer.status) from None
        if tags is None:
            return []
        # Only null means no tags: an empty string, false or {} is a broken answer, and reading
        # it as "no tags" would let a release take over tags that are in fact held.
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise self.session.error(
                operation, "bad answer: 'tags' is not a list of strings", answer.status
            )
        return tags

    def _next_page(
        self, answer: Answer, url: httpx.URL, repository: str, operation: str
    ) -> httpx.URL | None:
        """The next tags page from ``Link: <...>; rel="next"``: this repository's only."""
        try:
            link = answer.response.links.get("next", {}).get("url")
            next_url = url.join(link) if link else None
        except (httpx.InvalidURL, ValueError, TypeError):
            raise self.session.error(
                operation, "malformed pagination Link", answer.status
            ) from None
        if next_url is None:
            return None
        if not self.session.same_origin(next_url) or next_url.path != url.path:
            raise self.session.error(
                operation,
                f"pagination link to {printable(str(next_url.copy_with(query=None)))} refused; "
                f"accepted: /v2/{repository}/tags/list on this registry",
                answer.status,
            )
        return next_url

    def _manifest_type(self, answer: Answer, operation: str) -> str:
        """The manifest media type (Content-Type, else ``mediaType``), its document checked."""
        media_type = str(answer.headers.get("content-type", "")).split(";", 1)[0].strip().lower()
        try:
            document = parse_json_object(answer.body, what="manifest")
            declared = document.get("mediaType")
            if media_type not in MANIFEST_TYPES and isinstance(declared, str):
                media_type = str(declared)
            if media_type not in MANIFEST_TYPES:
                raise ValueError(
                    f"media type {media_type!r} is not supported; accepted: {ACCEPTED_TYPES}"
                )
            if declared is not None and declared != media_type:
                raise ValueError(f"document declares {declared!r}, served as {media_type!r}")
            check_shape(document, media_type)
        except ValueError as exc:
            raise self.session.error(operation, f"bad manifest: {exc}", answer.status) from None
        return media_type

    def _verified_digest(
        self, answer: Answer, raw: bytes, operation: str, reference: str | None
    ) -> str:
        """The digest of ``raw``, checked against the reference and Docker-Content-Digest."""
        expected = [reference] if reference and is_digest(reference) else []
        header = answer.headers.get("docker-content-digest")
        if header is not None:
            if not is_digest(header):
                raise self.session.error(
                    operation, f"Docker-Content-Digest {printable(header)[:80]!r} is not a digest"
                )
            expected.append(header)
        digest = digest_of(raw)
        for claimed in expected:
            actual = digest_of(raw, claimed.partition(":")[0])
            if actual != claimed:
                raise self.session.error(operation, f"content has digest {actual}, not {claimed}")
        return digest
