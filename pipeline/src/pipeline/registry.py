"""An async client for the OCI distribution API: tags, manifests, blobs, and index annotations.

Enough of the API for a release: read a repository's tags (to decide which floating tags move),
read manifests, indexes and config blobs (to verify what was pushed), push blobs and manifests,
and rewrite an image index with annotations under all of its tags. Talks plain HTTP only to a
registry on this machine and HTTPS to every other one, as Docker does, and never falls back.

Authentication follows the registries' challenges: none, HTTP basic (``WWW-Authenticate: Basic``,
e.g. an htpasswd registry), or bearer tokens as GHCR and Docker Hub issue them (a token per scope
from the challenge's realm, fetched with the basic credentials when given, else anonymously). The
password never appears in an error message, repr or log line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import httpx

from pipeline.references import is_loopback, normalize_registry

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
"""Every manifest media type this client reads and writes; all are sent in ``Accept``."""
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""Media types of a multi-platform image (an index of per-platform manifests)."""
_ACCEPTED_TYPES = ", ".join(MANIFEST_TYPES)

PULL = "pull"
PUSH = "pull,push"
"""Token scope actions: reading needs ``pull``; writing needs ``pull,push`` (as Docker asks)."""

DEFAULT_TIMEOUT = 30.0
READ_RETRY_PAUSES = (0.2, 0.5, 1.0)
"""Seconds to wait before each repeat of a read answered with one of ``RETRIED_STATUSES``."""
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "qm-nmr-calc-pipeline"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
"""Distribution refuses manifests over 4 MiB; a larger answer is not a manifest."""
MAX_TAG_PAGES = 10_000
"""Stop following ``Link: rel="next"`` after this many pages: a registry looping forever."""
MAX_ERROR_DETAIL = 300
"""Characters of a registry's error body quoted in a RegistryError."""
DIGEST_ALGORITHMS = ("sha256", "sha512")
BLOB_CONTENT_TYPE = "application/octet-stream"
JSON_SEPARATORS = (",", ":")

_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})\Z")
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|[^,\s]*)')

_HINTS = {
    401: "check --username/--password",
    403: "the credentials lack permission for this repository; pushing to GHCR needs "
    "a token with packages: write",
}
_HINT_NO_CREDENTIALS = "the registry wants credentials: give --username/--password"


class RegistryError(Exception):
    """A registry request failed; the message names registry, repository, operation and status."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status of the failed answer; None when no answer came."""
        self.code = code
        """The first OCI error code of the answer (``MANIFEST_UNKNOWN``...), if any."""


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry serves it: raw bytes, their digest and media type."""

    digest: str
    media_type: str
    raw: bytes

    @property
    def document(self) -> dict[str, Any]:
        """The parsed JSON document."""
        return parse_json_object(self.raw, what=f"manifest {self.digest}")

    @property
    def is_index(self) -> bool:
        """Whether this is an image index (several platforms) rather than one image."""
        return self.media_type in INDEX_TYPES


@dataclass(frozen=True)
class _Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: Mapping[str, str]


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The content digest of ``data``, e.g. ``sha256:<64 hex digits>``."""
    if algorithm not in DIGEST_ALGORITHMS:
        raise ValueError(
            f"digest algorithm {algorithm!r} is not supported; accepted: "
            f"{', '.join(DIGEST_ALGORITHMS)}"
        )
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(digest: str) -> str:
    """``digest`` if it is a valid sha256 or sha512 content digest."""
    if not _DIGEST.match(digest):
        raise ValueError(
            f"digest {digest!r} is not a content digest; accepted: sha256:<64 hex digits> "
            "or sha512:<128 hex digits>, lowercase"
        )
    return digest


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
    if _TAG.match(reference) or _DIGEST.match(reference):
        return reference
    raise ValueError(
        f"reference {reference!r} is neither a tag nor a digest; accepted: a tag of "
        "[A-Za-z0-9_][A-Za-z0-9._-]{0,127} or sha256:<64 hex digits>"
    )


def parse_json_object(raw: bytes, *, what: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or a ValueError naming ``what`` it should have been."""
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValueError(f"{what} is JSON but not an object; accepted: a JSON object")
    return document


def split_reference(reference: str) -> tuple[str, str, str]:
    """``(registry, repository, tag or digest)`` of ``ghcr.io/owner/name:tag`` or ``...@digest``."""
    registry, slash, rest = reference.partition("/")
    if not slash or not ("." in registry or ":" in registry or registry == "localhost"):
        raise ValueError(
            f"image reference {reference!r} has no registry host; accepted: "
            "HOST/REPOSITORY:TAG or HOST/REPOSITORY@DIGEST, "
            "e.g. ghcr.io/steinbeck/qm-nmr-calc-api:2.4.0"
        )
    if "@" in rest:
        name, _, target = rest.partition("@")
        check_digest(target)
    else:
        name, colon, target = rest.rpartition(":")
        if not colon or "/" in target:
            raise ValueError(
                f"image reference {reference!r} names no tag or digest; accepted: "
                "HOST/REPOSITORY:TAG or HOST/REPOSITORY@DIGEST (there is no implicit latest)"
            )
        check_reference(target)
    return normalize_registry(registry), check_repository(name), target


def parse_challenge(header: str) -> _Challenge:
    """The scheme and parameters of a ``WWW-Authenticate`` header."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for key, value in _CHALLENGE_PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return _Challenge(scheme=scheme.lower(), params=params)


def media_type_of(response: httpx.Response) -> str:
    """The media type of ``response`` without parameters (``; charset=...``)."""
    return str(response.headers.get("content-type", "")).split(";", 1)[0].strip().lower()


def _error_code_and_detail(response: httpx.Response) -> tuple[str | None, str]:
    """The first OCI error code of an error answer and a short text of all of them."""
    try:
        errors = response.json().get("errors") or []
        parts = [f"{e.get('code', '?')}: {e.get('message', '')}".strip() for e in errors]
        code = str(errors[0].get("code")) if errors else None
    except (ValueError, AttributeError, TypeError):
        return None, response.text[:MAX_ERROR_DETAIL].strip()
    return code, "; ".join(parts)[:MAX_ERROR_DETAIL]


class RegistryClient:
    """An OCI distribution API client for one registry: ``async with RegistryClient(...)``."""

    def __init__(
        self,
        registry: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        plain_http: bool = False,
    ) -> None:
        """``plain_http`` allows HTTP beyond loopback: only for a throwaway registry service."""
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither (anonymous access)")
        self.registry = normalize_registry(registry)
        self.username = username
        self._password = password
        scheme = "http" if plain_http or is_loopback(self.registry) else "https"
        self.base_url = httpx.URL(f"{scheme}://{self.registry}")
        self._use_basic = False
        self._tokens: dict[str, str] = {}
        self._http = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    def __repr__(self) -> str:
        password = "<set>" if self._password is not None else None
        return (
            f"RegistryClient(registry={self.registry!r}, username={self.username!r}, "
            f"password={password})"
        )

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    # --- tags -------------------------------------------------------------------------------

    async def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """Every tag of ``repository``, following ``Link`` pagination; [] if it does not exist."""
        check_repository(repository)
        if page_size is not None and page_size < 1:
            raise ValueError(f"page_size {page_size} is not accepted; give a positive number")
        url = self.base_url.join(f"/v2/{repository}/tags/list")
        if page_size is not None:
            url = url.copy_merge_params({"n": str(page_size)})
        tags: list[str] = []
        for page in range(MAX_TAG_PAGES):
            response = await self._request(
                "GET", url, repository, f"GET tags of {repository}", PULL, ok={200, 404}
            )
            if response.status_code == 404:
                return self._missing_repository(response, repository, page)
            tags.extend(self._page_tags(response, repository))
            next_url = self._next_page(response, url, repository)
            if next_url is None:
                return list(dict.fromkeys(tags))
            url = next_url
        raise self._error(f"GET tags of {repository}", f"more than {MAX_TAG_PAGES} pages")

    def _missing_repository(
        self, response: httpx.Response, repository: str, page: int
    ) -> list[str]:
        """[] for a 404 NAME_UNKNOWN on the first page; any other 404 is an error."""
        code, detail = _error_code_and_detail(response)
        if code == "NAME_UNKNOWN" and page == 0:
            return []
        raise self._error(f"GET tags of {repository}", f"404 not found: {detail}", 404, code)

    def _page_tags(self, response: httpx.Response, repository: str) -> list[str]:
        """The tags of one tags/list page (``"tags": null`` is an empty repository)."""
        operation = f"GET tags of {repository}"
        try:
            tags = parse_json_object(response.content, what="tag list").get("tags") or []
        except ValueError as exc:
            raise self._error(operation, f"bad answer: {exc}", response.status_code) from exc
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise self._error(operation, "bad answer: 'tags' is not a list of strings")
        return tags

    def _next_page(
        self, response: httpx.Response, url: httpx.URL, repository: str
    ) -> httpx.URL | None:
        """The URL of the next tags page from ``Link: <...>; rel="next"``, if any."""
        link = response.links.get("next", {}).get("url")
        if not link:
            return None
        next_url = url.join(link)
        if not self._same_origin(next_url) or next_url == url:
            raise self._error(
                f"GET tags of {repository}", f"bad pagination link {link!r}", response.status_code
            )
        return next_url

    # --- manifests --------------------------------------------------------------------------

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest or index under tag or digest ``reference``, its digest verified."""
        manifest = await self.get_manifest_or_none(repository, reference)
        if manifest is None:
            raise self._error(
                f"GET manifest {repository}:{reference}", "404 not found", 404, "MANIFEST_UNKNOWN"
            )
        return manifest

    async def get_manifest_or_none(self, repository: str, reference: str) -> Manifest | None:
        """The manifest or index under ``reference``, or None if the registry has none (404)."""
        check_repository(repository)
        check_reference(reference)
        operation = f"GET manifest {repository}:{reference}"
        response = await self._request(
            "GET",
            self.base_url.join(f"/v2/{repository}/manifests/{reference}"),
            repository,
            operation,
            PULL,
            ok={200, 404},
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return None
        raw = response.content
        if len(raw) > MAX_MANIFEST_BYTES:
            raise self._error(operation, f"answer of {len(raw)} bytes is too big for a manifest")
        digest = self._verified_digest(response, raw, operation, reference)
        return Manifest(digest=digest, media_type=self._manifest_type(response, operation), raw=raw)

    def _manifest_type(self, response: httpx.Response, operation: str) -> str:
        """The manifest media type from Content-Type, else from the document's ``mediaType``."""
        media_type = media_type_of(response)
        if media_type not in MANIFEST_TYPES:
            try:
                document = parse_json_object(response.content, what="manifest")
            except ValueError as exc:
                raise self._error(operation, f"bad answer: {exc}") from exc
            media_type = str(document.get("mediaType", media_type))
        if media_type not in MANIFEST_TYPES:
            raise self._error(
                operation,
                f"media type {media_type!r} is not supported; accepted: {_ACCEPTED_TYPES}",
            )
        return media_type

    def _verified_digest(
        self, response: httpx.Response, raw: bytes, operation: str, reference: str | None
    ) -> str:
        """The digest of ``raw``, checked against the reference and Docker-Content-Digest."""
        expected = [reference] if reference and _DIGEST.match(reference) else []
        header = response.headers.get("docker-content-digest")
        if header:
            expected.append(header)
        digest = digest_of(raw)
        for claimed in expected:
            algorithm = claimed.partition(":")[0]
            actual = digest if algorithm == "sha256" else self._digest_or_error(raw, algorithm)
            if actual != claimed:
                raise self._error(operation, f"content has digest {actual}, not {claimed}")
        return digest

    def _digest_or_error(self, raw: bytes, algorithm: str) -> str:
        """``digest_of`` turned into a RegistryError for an algorithm the registry claims."""
        try:
            return digest_of(raw, algorithm)
        except ValueError as exc:
            raise self._error("check digest", str(exc)) from exc

    async def put_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> str:
        """Store manifest ``raw`` under tag or digest ``reference``; returns its digest."""
        check_repository(repository)
        check_reference(reference)
        check_manifest(raw, media_type)
        digest = digest_of(raw)
        if _DIGEST.match(reference) and reference != digest:
            raise ValueError(f"manifest has digest {digest}; it cannot be stored as {reference}")
        operation = f"PUT manifest {repository}:{reference}"
        response = await self._request(
            "PUT",
            self.base_url.join(f"/v2/{repository}/manifests/{reference}"),
            repository,
            operation,
            PUSH,
            ok={200, 201},
            headers={"Content-Type": media_type},
            content=raw,
        )
        return self._verified_digest(response, raw, operation, digest)

    # --- blobs ------------------------------------------------------------------------------

    async def get_blob(self, repository: str, digest: str) -> bytes:
        """The blob ``digest`` of ``repository``, its content checked against the digest."""
        check_repository(repository)
        check_digest(digest)
        operation = f"GET blob {repository}@{digest}"
        response = await self._request(
            "GET",
            self.base_url.join(f"/v2/{repository}/blobs/{digest}"),
            repository,
            operation,
            PULL,
            ok={200},
            follow_redirects=True,  # GHCR serves blobs from a CDN; httpx drops auth off-origin
        )
        actual = self._digest_or_error(response.content, digest.partition(":")[0])
        if actual != digest:
            raise self._error(operation, f"content has digest {actual}")
        return response.content

    async def get_json_blob(self, repository: str, digest: str) -> dict[str, Any]:
        """A JSON object blob, such as an image config."""
        data = await self.get_blob(repository, digest)
        try:
            return parse_json_object(data, what=f"blob {digest}")
        except ValueError as exc:
            raise self._error(f"GET blob {repository}@{digest}", str(exc)) from exc

    async def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether ``repository`` already holds blob ``digest`` (HEAD, with push scope)."""
        check_repository(repository)
        check_digest(digest)
        response = await self._request(
            "HEAD",
            self.base_url.join(f"/v2/{repository}/blobs/{digest}"),
            repository,
            f"HEAD blob {repository}@{digest}",
            PUSH,
            ok={200, 404},
        )
        return response.status_code == 200

    async def push_blob(self, repository: str, data: bytes) -> str:
        """Upload ``data`` (monolithic POST then PUT) unless it exists; returns its digest."""
        digest = digest_of(data)
        if await self.blob_exists(repository, digest):
            return digest
        started = await self._request(
            "POST",
            self.base_url.join(f"/v2/{repository}/blobs/uploads/"),
            repository,
            f"POST blob upload to {repository}",
            PUSH,
            ok={202},
        )
        location = started.headers.get("location")
        if not location:
            raise self._error(f"POST blob upload to {repository}", "202 without a Location", 202)
        operation = f"PUT blob {repository}@{digest}"
        response = await self._request(
            "PUT",
            self.base_url.join(location).copy_merge_params({"digest": digest}),
            repository,
            operation,
            PUSH,
            ok={201},
            headers={"Content-Type": BLOB_CONTENT_TYPE},
            content=data,
        )
        header = response.headers.get("docker-content-digest")
        if header and header != digest:
            raise self._error(operation, f"registry stored digest {header}", 201)
        return digest

    # --- index annotations ------------------------------------------------------------------

    async def annotate_index(
        self, repository: str, tags: Sequence[str], annotations: Mapping[str, str]
    ) -> str:
        """Add ``annotations`` to the index under ``tags[0]``, store it under every tag in order.

        The version tag goes first and the floating tags last, so a floating tag never points at
        something the version tag does not. Existing annotations are kept unless overwritten;
        calling it again with the same annotations gives the same bytes and digest. A
        single-platform manifest is refused: such an image has no index to carry annotations.
        """
        check_annotations(annotations)
        if not tags:
            raise ValueError("annotate_index needs at least one tag; accepted: version tag first")
        manifest = await self.get_manifest(repository, tags[0])
        operation = f"annotate index {repository}:{tags[0]}"
        if not manifest.is_index:
            raise self._error(
                operation,
                f"it is a single manifest ({manifest.media_type}), not an index; a "
                "single-platform image has no index to annotate",
            )
        document = manifest.document
        document["annotations"] = {**(document.get("annotations") or {}), **annotations}
        raw = serialize_json(document)
        digest = digest_of(raw)
        for tag in tags:
            stored = await self.put_manifest(repository, tag, raw, manifest.media_type)
            if stored != digest:
                raise self._error(operation, f"{tag} stored as {stored}, expected {digest}")
        return digest

    # --- requests and authentication --------------------------------------------------------

    async def _request(
        self,
        method: str,
        url: httpx.URL,
        repository: str,
        operation: str,
        actions: str,
        *,
        ok: set[int],
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send one request, answering one auth challenge; a status outside ``ok`` raises.

        A read (GET, HEAD) answered 429 or 5xx is sent again a few times, with a growing pause:
        a registry under concurrent writes can fail a read of a tag that is being written.
        """
        scope = f"repository:{repository}:{actions}"
        response = await self._send(
            method, url, scope, operation, headers, content, follow_redirects
        )
        for pause in READ_RETRY_PAUSES if method in ("GET", "HEAD") else ():
            if response.status_code not in RETRIED_STATUSES or response.status_code in ok:
                break
            await anyio.sleep(pause)
            response = await self._send(
                method, url, scope, operation, headers, content, follow_redirects
            )
        if response.status_code == 401:
            await self._answer_challenge(response, scope, operation)
            response = await self._send(
                method, url, scope, operation, headers, content, follow_redirects
            )
        if response.status_code not in ok:
            raise self._status_error(response, operation)
        return response

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        scope: str,
        operation: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        follow_redirects: bool,
    ) -> httpx.Response:
        """Send one request with the credentials known for ``scope``; network errors raise."""
        all_headers = dict(headers or {})
        if self._same_origin(url):
            all_headers.update(self._auth_headers(scope))
        try:
            return await self._http.request(
                method, url, headers=all_headers, content=content, follow_redirects=follow_redirects
            )
        except httpx.HTTPError as exc:
            raise self._error(operation, f"no answer ({type(exc).__name__}: {exc})") from exc

    def _auth_headers(self, scope: str) -> dict[str, str]:
        """The Authorization header for ``scope``: a cached token, else basic if it was asked."""
        token = self._tokens.get(scope)
        if token is not None:
            return {"Authorization": f"Bearer {token}"}
        if self._use_basic:
            return {"Authorization": self._basic_header()}
        return {}

    def _basic_header(self) -> str:
        """The HTTP basic Authorization value of the configured credentials."""
        pair = f"{self.username or ''}:{self._password or ''}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"

    async def _answer_challenge(self, response: httpx.Response, scope: str, operation: str) -> None:
        """Prepare credentials for a retry after a 401, or raise if there is nothing to retry."""
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if challenge.scheme == "bearer" and "realm" in challenge.params:
            self._tokens[scope] = await self._fetch_token(challenge, scope, operation)
            return
        if challenge.scheme == "basic" and self.username is not None and not self._use_basic:
            self._use_basic = True
            return
        # No usable challenge, or basic credentials were already refused: report the 401 as is.

    async def _fetch_token(self, challenge: _Challenge, scope: str, operation: str) -> str:
        """A bearer token for ``scope`` from the challenge's realm (basic credentials if given)."""
        realm = httpx.URL(challenge.params["realm"])
        token_operation = f"{operation}: token request to {realm.host}"
        if realm.scheme != "https" and not (realm.scheme == "http" and is_loopback(realm.host)):
            raise self._error(
                token_operation,
                f"token realm {realm} is not HTTPS; accepted: https, or http on loopback only",
            )
        scopes = [scope]
        if challenge.params.get("scope") and challenge.params["scope"] != scope:
            scopes.append(challenge.params["scope"])
        params: list[tuple[str, str | int | float | bool | None]] = [("scope", s) for s in scopes]
        if "service" in challenge.params:
            params.insert(0, ("service", challenge.params["service"]))
        headers = {"Authorization": self._basic_header()} if self.username is not None else {}
        try:
            response = await self._http.get(realm, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise self._error(token_operation, f"no answer ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise self._status_error(response, token_operation)
        return self._token_of(response, token_operation)

    def _token_of(self, response: httpx.Response, operation: str) -> str:
        """``token`` (or ``access_token``) of a token endpoint's JSON answer."""
        try:
            answer = parse_json_object(response.content, what="token answer")
        except ValueError as exc:
            raise self._error(operation, str(exc), response.status_code) from exc
        token = answer.get("token") or answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise self._error(
                operation, "answer has no 'token' or 'access_token' string", response.status_code
            )
        return token

    def _same_origin(self, url: httpx.URL) -> bool:
        """Whether ``url`` is on this registry (credentials go nowhere else)."""
        return (url.scheme, url.netloc) == (self.base_url.scheme, self.base_url.netloc)

    def _status_error(self, response: httpx.Response, operation: str) -> RegistryError:
        """A RegistryError for an unexpected status, with the registry's error codes and a hint."""
        status = response.status_code
        code, detail = _error_code_and_detail(response)
        reason = response.reason_phrase.lower() or "error"
        hint = _HINTS.get(status)
        if status == 401 and self.username is None:
            hint = _HINT_NO_CREDENTIALS
        text = f"{status} {reason}"
        if hint:
            text += f" ({hint})"
        if detail:
            text += f": {detail}"
        return self._error(operation, text, status, code)

    def _error(
        self, operation: str, what: str, status: int | None = None, code: str | None = None
    ) -> RegistryError:
        """A RegistryError ``registry R: OPERATION failed: WHAT``, scrubbed of the password."""
        message = f"registry {self.registry}: {operation} failed: {what}"
        if self._password:
            message = message.replace(self._password, "***")
        return RegistryError(message, status=status, code=code)


def check_manifest(raw: bytes, media_type: str) -> dict[str, Any]:
    """The parsed manifest ``raw``, checked to be a JSON object of a supported media type."""
    if media_type not in MANIFEST_TYPES:
        raise ValueError(
            f"media type {media_type!r} is not a manifest type; accepted: {_ACCEPTED_TYPES}"
        )
    document = parse_json_object(raw, what="manifest")
    declared = document.get("mediaType")
    if declared is not None and declared != media_type:
        raise ValueError(f"manifest declares mediaType {declared!r} but is sent as {media_type!r}")
    return document


def serialize_json(document: Mapping[str, Any]) -> bytes:
    """Compact, deterministic JSON bytes (key order as given) for a manifest or config."""
    return json.dumps(document, separators=JSON_SEPARATORS, ensure_ascii=False).encode()


def check_annotations(annotations: Mapping[str, str]) -> None:
    """Refuse annotations that are not string to string."""
    for key, value in annotations.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"annotation {key!r}={value!r} is not accepted; give strings only")


async def annotate_index(
    client: RegistryClient,
    repository: str,
    tags: Sequence[str],
    annotations: Mapping[str, str],
) -> str:
    """``client.annotate_index(repository, tags, annotations)``: see there."""
    return await client.annotate_index(repository, tags, annotations)
