"""SPDX 2.3 SBOMs: check one, and merge the platforms' SBOMs into one for their image index.

Pure: documents in, documents out. syft writes one SBOM per platform manifest
(``pipeline.sboms``); an image index is a subject of its own, so it gets one document holding
every platform's elements. SPDXIDs must be unique in a document, and each platform's SBOM has its
own (two platforms list the same package under the same ID), so each element's ID gains its
platform: ``SPDXRef-Package-deb-libc6-9ffc`` of linux/arm64 becomes
``SPDXRef-linux-arm64.Package-deb-libc6-9ffc``. The ``.`` ends the platform part, whose words
never hold ``.`` or ``-`` apart from the ``-`` between them, so two platforms never meet on one
ID. Local ``LicenseRef-`` identifiers are renamed the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from pipeline.attest.errors import AttestationError

SPDX_VERSION = "SPDX-2.3"
DATA_LICENSE = "CC0-1.0"
DOCUMENT_ID = "SPDXRef-DOCUMENT"
NAMESPACE_BASE = "https://spdx.org/spdxdocs/"
"""The usual prefix of a document namespace: a unique URI, never fetched."""
MERGING_TOOL = "Tool: qm-nmr-calc-release-pipeline"
CREATED = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z", re.ASCII)
"""SPDX's creation time, always UTC: in this form, text order is time order."""
SPDX_ID = re.compile(r"^SPDXRef-[A-Za-z0-9.-]+\Z", re.ASCII)
LOCAL_LICENSE_REF = re.compile(r"(?<![A-Za-z0-9.:-])LicenseRef-(?=[A-Za-z0-9.-])", re.ASCII)
"""A ``LicenseRef-`` of this document (not ``DocumentRef-x:LicenseRef-...``) in an expression."""
PLATFORM_WORD = re.compile(r"[^A-Za-z0-9]", re.ASCII)
UNNAMED_ELEMENTS = frozenset({"NONE", "NOASSERTION"})
"""What a relationship may name instead of an element."""
LICENSE_FIELDS = (
    "licenseConcluded",
    "licenseDeclared",
    "licenseInfoFromFiles",
    "licenseInfoInFiles",
)
DOCUMENT_FIELDS = frozenset(
    {"spdxVersion", "dataLicense", "SPDXID", "name", "documentNamespace", "creationInfo", "comment"}
)
MERGED_FIELDS = frozenset(
    {"packages", "files", "relationships", "hasExtractedLicensingInfos", "documentDescribes"}
)
"""What a merge carries over from each platform's document besides its header."""


def sbom_packages(document: Mapping[str, Any]) -> list[str]:
    """The names of the packages an SPDX 2.3 JSON document lists, sorted (one per package).

    Raises ``AttestationError`` naming what is wrong when ``document`` is not one: the version,
    data licence or document ID, a missing name, namespace or creation info, a package, file or
    relationship of the wrong shape, an SPDXID used twice, a relationship naming no element.
    """
    if not isinstance(document, Mapping):
        raise AttestationError(f"an SBOM must be a JSON object, not {type(document).__name__}")
    _expect(document, "spdxVersion", SPDX_VERSION)
    _expect(document, "dataLicense", DATA_LICENSE)
    _expect(document, "SPDXID", DOCUMENT_ID)
    for key in ("name", "documentNamespace"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise AttestationError(f"the SBOM has no {key}; accepted: a non-empty string")
    _created(document)
    packages = _elements(document, "packages")
    identifiers = [element["SPDXID"] for element in packages + _elements(document, "files")]
    repeated = sorted({i for i in identifiers if identifiers.count(i) > 1})
    if repeated:
        raise AttestationError(f"the SBOM uses these SPDXIDs more than once: {repeated}")
    for relationship in _relationships(document):
        for end in ("spdxElementId", "relatedSpdxElement"):
            if not _known(relationship[end], identifiers):
                raise AttestationError(
                    f"an SBOM relationship's {end} {relationship[end]!r} names no element "
                    "of the document; accepted: an SPDXID it defines, SPDXRef-DOCUMENT, "
                    "NONE, NOASSERTION or DocumentRef-...:SPDXRef-..."
                )
    for described in _described(document):
        if not _known(described, identifiers):
            raise AttestationError(f"the SBOM's documentDescribes names no element: {described!r}")
    return sorted(package["name"] for package in packages)


def merged_sbom(name: str, by_platform: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One SPDX 2.3 document for an image index: every platform's SBOM, IDs made unique.

    ``name`` names the document (the index, e.g. ``ghcr.io/o/r@sha256:...``); ``by_platform``
    maps each platform (``linux/amd64``) to its SBOM, each checked by ``sbom_packages``. The
    document describes every platform's root; elements keep their content, only their IDs (and
    local ``LicenseRef-`` identifiers) gain the platform. Deterministic: the same input gives
    the same document, whatever the order of ``by_platform``; its namespace is derived from it.
    Raises ``AttestationError`` for no platform, a document that is not SPDX 2.3, one with
    parts a merge does not carry (snippets, document annotations, external documents), or two
    platforms with the same words (``linux/amd64`` and ``linux/amd-64``).
    """
    if not name:
        raise AttestationError("a merged SBOM needs a name: the image index it describes")
    if not by_platform:
        raise AttestationError("a merged SBOM needs at least one platform's SBOM; none given")
    prefixes: dict[str, str] = {}
    for platform in sorted(by_platform):
        prefix = platform_prefix(platform)
        if prefix in prefixes.values():
            other = next(p for p, seen in prefixes.items() if seen == prefix)
            raise AttestationError(
                f"platforms {other!r} and {platform!r} give the same SPDXID prefix {prefix!r}; "
                "accepted: platforms that differ in their letters and digits"
            )
        prefixes[platform] = prefix
    merged: dict[str, list[dict[str, Any]]] = {key: [] for key in sorted(MERGED_FIELDS)}
    for platform, prefix in prefixes.items():
        document = by_platform[platform]
        try:
            sbom_packages(document)
            _check_mergeable(document)
        except AttestationError as error:
            raise AttestationError(f"the SBOM of {platform}: {error}") from None
        for key, elements in _renamed(document, prefix).items():
            merged[key] += elements
    documents = [by_platform[platform] for platform in prefixes]
    result: dict[str, Any] = {
        "spdxVersion": SPDX_VERSION,
        "dataLicense": DATA_LICENSE,
        "SPDXID": DOCUMENT_ID,
        "name": name,
        "documentNamespace": _namespace(name, by_platform),
        "creationInfo": _creation_info(documents),
        "comment": (
            f"The SBOMs of the platforms {', '.join(prefixes)} of {name}, merged: each element's"
            " SPDXID begins with its platform ("
            + ", ".join(f"SPDXRef-{prefix}." for prefix in prefixes.values())
            + ")."
        ),
    }
    for key in ("packages", "files", "hasExtractedLicensingInfos", "relationships"):
        if merged[key] or key == "packages":
            result[key] = merged[key]
    return result


def platform_prefix(platform: str) -> str:
    """``linux-arm64-v8`` of ``linux/arm64/v8``: the platform's words, letters and digits only.

    Raises ``AttestationError`` for a platform with an empty word (``linux//amd64``, ``/``).
    """
    words = [PLATFORM_WORD.sub("", word) for word in platform.split("/")]
    if not all(words):
        raise AttestationError(
            f"platform {platform!r} has an empty part; accepted: OS/ARCH[/VARIANT] of letters "
            "and digits, e.g. linux/arm64"
        )
    return "-".join(words)


def _expect(document: Mapping[str, Any], key: str, value: str) -> None:
    """Raise unless ``document[key] == value``."""
    if document.get(key) != value:
        raise AttestationError(
            f"the SBOM's {key} is {document.get(key)!r}; accepted: {value!r} (SPDX 2.3 JSON)"
        )


def _created(document: Mapping[str, Any]) -> str:
    """When the document was made (its ``creationInfo.created``), checked: SPDX's UTC form."""
    info = document.get("creationInfo")
    creators = info.get("creators") if isinstance(info, Mapping) else None
    if (
        not isinstance(info, Mapping)
        or not isinstance(creators, list)
        or not creators
        or not all(isinstance(creator, str) for creator in creators)
    ):
        raise AttestationError(
            "the SBOM's creationInfo is missing or has no creators; accepted: an object with "
            "created and a non-empty list of creators"
        )
    created = info.get("created")
    if not isinstance(created, str) or not CREATED.match(created):
        raise AttestationError(
            f"the SBOM's creationInfo.created {created!r} is not a time in SPDX's form; "
            "accepted: YYYY-MM-DDThh:mm:ssZ (UTC)"
        )
    return created


def _elements(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The document's packages or files, each checked to have an SPDXID (and packages a name)."""
    elements = document.get(key, [])
    if not isinstance(elements, list):
        raise AttestationError(f"the SBOM's {key} is not a list")
    for element in elements:
        if not isinstance(element, Mapping) or not SPDX_ID.match(str(element.get("SPDXID"))):
            raise AttestationError(
                f"an SBOM entry of {key} has no valid SPDXID; accepted: SPDXRef-[A-Za-z0-9.-]+"
            )
        if key == "packages" and (not isinstance(element.get("name"), str) or not element["name"]):
            raise AttestationError(f"the SBOM's package {element['SPDXID']} has no name")
    return elements


def _relationships(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The document's relationships, each checked to name two elements and a type."""
    relationships = document.get("relationships", [])
    keys = ("spdxElementId", "relationshipType", "relatedSpdxElement")
    if not isinstance(relationships, list) or not all(
        isinstance(r, Mapping) and all(isinstance(r.get(key), str) for key in keys)
        for r in relationships
    ):
        raise AttestationError(
            f"the SBOM's relationships are not a list of objects with {', '.join(keys)}"
        )
    return relationships


def _described(document: Mapping[str, Any]) -> list[str]:
    """The deprecated ``documentDescribes`` list of IDs, checked."""
    described = document.get("documentDescribes", [])
    if not isinstance(described, list) or not all(isinstance(i, str) for i in described):
        raise AttestationError("the SBOM's documentDescribes is not a list of SPDXIDs")
    return described


def _known(element: str, identifiers: Iterable[str]) -> bool:
    """Whether a relationship may name ``element`` in a document defining ``identifiers``."""
    return (
        element == DOCUMENT_ID
        or element in UNNAMED_ELEMENTS
        or (element.startswith("DocumentRef-") and ":SPDXRef-" in element)
        or element in identifiers
    )


def _check_mergeable(document: Mapping[str, Any]) -> None:
    """Raise for parts of a document that ``merged_sbom`` would not carry faithfully."""
    unknown = sorted(set(document) - DOCUMENT_FIELDS - MERGED_FIELDS)
    if unknown:
        raise AttestationError(
            f"it has {', '.join(unknown)}, which a merge does not carry; accepted: "
            f"{', '.join(sorted(DOCUMENT_FIELDS | MERGED_FIELDS))}"
        )
    licenses = document.get("hasExtractedLicensingInfos", [])
    if not isinstance(licenses, list) or not all(
        isinstance(info, Mapping) and isinstance(info.get("licenseId"), str) for info in licenses
    ):
        raise AttestationError("its hasExtractedLicensingInfos is not a list of licenses")


def _renamed(document: Mapping[str, Any], prefix: str) -> dict[str, list[dict[str, Any]]]:
    """The document's elements with every ID (and local licence ID) given ``prefix``."""

    def element(identifier: str) -> str:
        if identifier in UNNAMED_ELEMENTS or identifier == DOCUMENT_ID:
            return identifier
        if identifier.startswith("DocumentRef-"):
            return identifier
        return f"SPDXRef-{prefix}." + identifier.removeprefix("SPDXRef-")

    def licenses(expression: str) -> str:
        return LOCAL_LICENSE_REF.sub(f"LicenseRef-{prefix}.", expression)

    packages = [
        _with_ids(package, element, licenses) | _has_files(package, element)
        for package in document.get("packages", [])
    ]
    files = [_with_ids(file, element, licenses) for file in document.get("files", [])]
    relationships = [
        {
            **_plain(relationship),
            "spdxElementId": element(relationship["spdxElementId"]),
            "relatedSpdxElement": element(relationship["relatedSpdxElement"]),
        }
        for relationship in document.get("relationships", [])
    ]
    relationships += [  # the deprecated field, as the relationships it stands for
        {"spdxElementId": DOCUMENT_ID, "relationshipType": "DESCRIBES", "relatedSpdxElement": i}
        for i in map(element, _described(document))
    ]
    extracted = [
        {**_plain(info), "licenseId": licenses(info["licenseId"])}
        for info in document.get("hasExtractedLicensingInfos", [])
    ]
    return {
        "packages": packages,
        "files": files,
        "relationships": relationships,
        "hasExtractedLicensingInfos": extracted,
    }


def _with_ids(
    item: Mapping[str, Any], element: Callable[[str], str], licenses: Callable[[str], str]
) -> dict[str, Any]:
    """A package or file with its SPDXID and licence fields renamed."""
    renamed: dict[str, Any] = _plain(item)
    renamed["SPDXID"] = element(item["SPDXID"])
    for key in LICENSE_FIELDS:
        value = renamed.get(key)
        if isinstance(value, str):
            renamed[key] = licenses(value)
        elif isinstance(value, list):
            renamed[key] = [licenses(v) if isinstance(v, str) else v for v in value]
    return renamed


def _has_files(package: Mapping[str, Any], element: Callable[[str], str]) -> dict[str, Any]:
    """A package's ``hasFiles`` with its file IDs renamed (nothing when it has none)."""
    files = package.get("hasFiles")
    if not isinstance(files, list):
        return {}
    return {"hasFiles": [element(i) if isinstance(i, str) else i for i in files]}


def _plain(value: Any) -> Any:  # noqa: ANN401 - any JSON value
    """A deep copy of a JSON value made of dicts and lists (the caller's Mappings untouched)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _creation_info(documents: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Made when the newest platform SBOM was, by their creators and the merge."""
    creators = {c for document in documents for c in document["creationInfo"]["creators"]}
    info: dict[str, Any] = {
        "created": max(_created(document) for document in documents),
        "creators": sorted(creators | {MERGING_TOOL}),
    }
    versions = {document["creationInfo"].get("licenseListVersion") for document in documents}
    if len(versions) == 1 and isinstance(version := versions.pop(), str):
        info["licenseListVersion"] = version
    return info


def _namespace(name: str, by_platform: Mapping[str, Mapping[str, Any]]) -> str:
    """A namespace unique to this merge: the name and a digest of every input document."""
    content = json.dumps(
        {"name": name, "platforms": _plain(by_platform)}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256(content.encode()).hexdigest()
    return f"{NAMESPACE_BASE}{quote(name, safe='/:')}-{digest}"
