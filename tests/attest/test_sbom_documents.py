"""SPDX 2.3 SBOMs: what ``sbom_packages`` accepts, and the merged SBOM of an image index.

The merge must give one valid document (every SPDXID unique, every relationship resolving),
keep every platform's elements as they were but for their IDs, and be deterministic: the same
platforms' SBOMs give the same bytes, whatever their order.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline.attest.errors import AttestationError
from pipeline.attest.sbom import merged_sbom, platform_prefix, sbom_packages

INDEX = "ghcr.io/steinbeck/qm-nmr-calc-api@sha256:" + "a" * 64
ROOT = "SPDXRef-DocumentRoot-Image-ghcr.io-steinbeck-qm-nmr-calc-api"


def syft_document(
    packages: dict[str, str], created: str = "2026-12-04T19:52:50Z"
) -> dict[str, Any]:
    """A document shaped as syft 1.18.1 writes it: ``packages`` (name -> SPDXID) in a root."""
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "ghcr.io/steinbeck/qm-nmr-calc-api",
        "documentNamespace": "https://anchore.com/syft/image/qm-nmr-calc-api-1",
        "creationInfo": {
            "licenseListVersion": "3.25",
            "creators": ["Organization: Anchore, Inc", "Tool: syft-1.18.1"],
            "created": created,
        },
        "packages": [
            {"name": name, "SPDXID": spdx_id, "versionInfo": "1.0", "licenseDeclared": "MIT"}
            for name, spdx_id in packages.items()
        ]
        + [{"name": "ghcr.io/steinbeck/qm-nmr-calc-api", "SPDXID": ROOT}],
        "files": [{"fileName": "var/lib/dpkg/status", "SPDXID": "SPDXRef-File-status"}],
        "relationships": [
            {"spdxElementId": ROOT, "relatedSpdxElement": i, "relationshipType": "CONTAINS"}
            for i in packages.values()
        ]
        + [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relatedSpdxElement": ROOT,
                "relationshipType": "DESCRIBES",
            },
            {
                "spdxElementId": next(iter(packages.values()), ROOT),
                "relatedSpdxElement": "SPDXRef-File-status",
                "relationshipType": "OTHER",
            },
        ],
    }


API = syft_document(
    {"libc6": "SPDXRef-Package-deb-libc6-9ffc", "fastapi": "SPDXRef-Package-python-fastapi-e2ae"}
)


def identifiers(document: dict[str, Any]) -> list[str]:
    """Every element ID a document defines."""
    return [e["SPDXID"] for key in ("packages", "files") for e in document.get(key, [])]


# --- sbom_packages ------------------------------------------------------------------------------


def test_the_package_names_of_an_sbom_are_listed_sorted() -> None:
    assert sbom_packages(API) == ["fastapi", "ghcr.io/steinbeck/qm-nmr-calc-api", "libc6"]


def broken(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    """``API`` with the value at ``path`` replaced (deleted when ``value`` is ``...``)."""
    document = copy.deepcopy(API)
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([API], "must be a JSON object, not list"),
        (broken(("spdxVersion",), "SPDX-2.2"), "spdxVersion is 'SPDX-2.2'; accepted: 'SPDX-2.3'"),
        (broken(("SPDXID",), "SPDXRef-Doc"), "SPDXID is 'SPDXRef-Doc'"),
        (broken(("dataLicense",), ...), "dataLicense is None"),
        (broken(("name",), ""), "has no name"),
        (broken(("documentNamespace",), ...), "has no documentNamespace"),
        (broken(("creationInfo", "creators"), []), "has no creators"),
        (broken(("creationInfo", "created"), "2026-12-04 19:52"), "is not a time in SPDX's form"),
        (broken(("packages",), {}), "packages is not a list"),
        (broken(("packages", 0, "name"), 7), "package SPDXRef-Package-deb-libc6-9ffc has no name"),
        (broken(("packages", 0, "SPDXID"), "Package-1"), "has no valid SPDXID"),
        (broken(("packages", 1, "SPDXID"), "SPDXRef-File-status"), "more than once"),
        (broken(("relationships", 0, "relatedSpdxElement"), "SPDXRef-Gone"), "'SPDXRef-Gone'"),
        (broken(("relationships", 0, "relationshipType"), ...), "relationships are not a list"),
        (broken(("documentDescribes",), ["SPDXRef-Gone"]), "documentDescribes names no element"),
    ],
)
def test_a_document_that_is_not_spdx_2_3_is_refused_saying_why(
    document: Any,
    problem: str,
) -> None:
    with pytest.raises(AttestationError) as refused:
        sbom_packages(document)
    assert problem in str(refused.value)


def test_relationships_may_name_the_document_nothing_or_another_document() -> None:
    document = copy.deepcopy(API)
    for other in ("NONE", "NOASSERTION", "DocumentRef-base:SPDXRef-Package-x"):
        document["relationships"].append(
            {"spdxElementId": ROOT, "relatedSpdxElement": other, "relationshipType": "OTHER"}
        )
    assert "libc6" in sbom_packages(document)


# --- merged_sbom --------------------------------------------------------------------------------


def test_the_merged_sbom_holds_every_platform_under_ids_of_its_own() -> None:
    arm = syft_document({"libc6": "SPDXRef-Package-deb-libc6-9ffc"}, "2026-12-04T20:01:00Z")
    merged = merged_sbom(INDEX, {"linux/arm64": arm, "linux/amd64": API})
    assert sbom_packages(merged) == sorted([*sbom_packages(API), *sbom_packages(arm)])
    assert merged["name"] == INDEX
    assert merged["creationInfo"]["created"] == "2026-12-04T20:01:00Z"  # the newest
    assert "Tool: syft-1.18.1" in merged["creationInfo"]["creators"]
    libc = {p["SPDXID"] for p in merged["packages"] if p["name"] == "libc6"}
    assert libc == {
        "SPDXRef-linux-amd64.Package-deb-libc6-9ffc",
        "SPDXRef-linux-arm64.Package-deb-libc6-9ffc",
    }
    described = [
        r["relatedSpdxElement"]
        for r in merged["relationships"]
        if r["spdxElementId"] == "SPDXRef-DOCUMENT"
    ]
    assert described == [f"SPDXRef-linux-amd64.{ROOT[8:]}", f"SPDXRef-linux-arm64.{ROOT[8:]}"]


def test_a_platform_whose_words_hold_another_ones_ids_never_meets_it() -> None:
    # "linux-amd64." + "v8.Package" vs "linux-amd64-v8." + "Package": the first "." ends the
    # platform, so neither can become the other.
    plain = syft_document({"x": "SPDXRef-v8.Package"})
    variant = syft_document({"x": "SPDXRef-Package"})
    merged = merged_sbom(INDEX, {"linux/amd64": plain, "linux/amd64/v8": variant})
    ids = identifiers(merged)
    assert len(ids) == len(set(ids))
    assert "SPDXRef-linux-amd64.v8.Package" in ids
    assert "SPDXRef-linux-amd64-v8.Package" in ids


def test_platforms_with_the_same_words_are_refused() -> None:
    with pytest.raises(AttestationError, match="'linux/amd-64' and 'linux/amd64' give the same"):
        merged_sbom(INDEX, {"linux/amd64": API, "linux/amd-64": API})


@pytest.mark.parametrize("platform", ["linux//amd64", "linux/", "/", "linux/+"])
def test_a_platform_with_an_empty_part_is_refused(platform: str) -> None:
    with pytest.raises(AttestationError, match="has an empty part"):
        platform_prefix(platform)


def test_no_platform_no_name_or_a_broken_platform_sbom_is_refused() -> None:
    with pytest.raises(AttestationError, match="at least one platform"):
        merged_sbom(INDEX, {})
    with pytest.raises(AttestationError, match="needs a name"):
        merged_sbom("", {"linux/amd64": API})
    with pytest.raises(AttestationError, match=r"the SBOM of linux/arm64: .*SPDX-2\.2"):
        merged_sbom(
            INDEX, {"linux/amd64": API, "linux/arm64": broken(("spdxVersion",), "SPDX-2.2")}
        )


def test_parts_a_merge_would_not_carry_are_refused() -> None:
    with_snippets = broken(("snippets",), [{"SPDXID": "SPDXRef-Snippet-1"}])
    with pytest.raises(AttestationError, match="it has snippets, which a merge does not carry"):
        merged_sbom(INDEX, {"linux/amd64": with_snippets})


def test_local_licence_ids_are_renamed_with_their_platform_and_others_kept() -> None:
    document = copy.deepcopy(API)
    document["hasExtractedLicensingInfos"] = [{"licenseId": "LicenseRef-rdkit", "name": "rdkit"}]
    document["packages"][0]["licenseDeclared"] = (
        "(LicenseRef-rdkit OR MIT) AND DocumentRef-base:LicenseRef-other"
    )
    document["files"][0]["licenseInfoInFiles"] = ["LicenseRef-rdkit", "NOASSERTION"]
    merged = merged_sbom(INDEX, {"linux/arm64": document})
    assert merged["hasExtractedLicensingInfos"] == [
        {"licenseId": "LicenseRef-linux-arm64.rdkit", "name": "rdkit"}
    ]
    assert merged["packages"][0]["licenseDeclared"] == (
        "(LicenseRef-linux-arm64.rdkit OR MIT) AND DocumentRef-base:LicenseRef-other"
    )
    assert merged["files"][0]["licenseInfoInFiles"] == [
        "LicenseRef-linux-arm64.rdkit",
        "NOASSERTION",
    ]


def test_document_describes_becomes_the_relationships_it_stands_for() -> None:
    document = copy.deepcopy(API)
    document["relationships"] = [
        r for r in document["relationships"] if r["relationshipType"] != "DESCRIBES"
    ]
    document["documentDescribes"] = [ROOT]
    merged = merged_sbom(INDEX, {"linux/amd64": document})
    assert "documentDescribes" not in merged
    assert {
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": f"SPDXRef-linux-amd64.{ROOT[8:]}",
    } in merged["relationships"]


def test_the_inputs_are_left_as_they_were() -> None:
    document = copy.deepcopy(API)
    merged_sbom(INDEX, {"linux/amd64": document})
    assert document == API


# --- merged_sbom, for all inputs ----------------------------------------------------------------

SPDX_SUFFIX = st.text("ABCabc019.-", min_size=1, max_size=6)
PLATFORMS = st.builds(
    lambda os_name, architecture, variant: "/".join([os_name, architecture, *variant]),
    st.sampled_from(["linux", "windows"]),
    st.sampled_from(["amd64", "arm64", "arm", "ppc64le", "s390x", "386", "riscv64"]),
    st.lists(st.sampled_from(["v5", "v6", "v7", "v8"]), max_size=1),
)


@st.composite
def platform_sboms(draw: st.DrawFn) -> dict[str, Any]:
    """A valid SPDX 2.3 document: packages and files, relationships between them."""
    suffixes = draw(st.lists(SPDX_SUFFIX, unique=True, min_size=1, max_size=6))
    ids = [f"SPDXRef-{suffix}" for suffix in suffixes]
    packages = draw(st.integers(1, len(ids)))
    ends = st.sampled_from([*ids, "SPDXRef-DOCUMENT", "NOASSERTION"])
    relationships = draw(
        st.lists(
            st.tuples(ends, st.sampled_from(["CONTAINS", "DESCRIBES", "OTHER"]), ends),
            max_size=8,
        )
    )
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": draw(st.sampled_from(["api", "worker"])),
        "documentNamespace": "https://example.invalid/" + draw(SPDX_SUFFIX),
        "creationInfo": {
            "creators": draw(
                st.lists(st.sampled_from(["Tool: syft-1.18.1", "Tool: x"]), min_size=1)
            ),
            "created": f"2026-12-0{draw(st.integers(1, 9))}T19:52:50Z",
        },
        "packages": [
            {"name": draw(st.sampled_from(["libc6", "fastapi", "rdkit"])), "SPDXID": spdx_id}
            for spdx_id in ids[:packages]
        ],
        "files": [
            {"fileName": f"f{n}", "SPDXID": spdx_id} for n, spdx_id in enumerate(ids[packages:])
        ],
        "relationships": [
            {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}
            for a, kind, b in relationships
        ],
    }


INPUTS = st.dictionaries(PLATFORMS, platform_sboms(), min_size=1, max_size=4)


@given(INPUTS)
def test_the_merged_sbom_is_valid_and_its_ids_unique(by_platform: dict[str, Any]) -> None:
    merged = merged_sbom(INDEX, by_platform)
    names = sbom_packages(merged)  # valid: unique IDs, every relationship resolves
    assert Counter(names) == Counter(n for d in by_platform.values() for n in sbom_packages(d))
    ids = identifiers(merged)
    assert len(ids) == len(set(ids)) == sum(len(identifiers(d)) for d in by_platform.values())


@given(INPUTS)
def test_each_element_keeps_its_content_and_gains_its_platform(by_platform: dict[str, Any]) -> None:
    merged = merged_sbom(INDEX, by_platform)
    by_id = {e["SPDXID"]: e for key in ("packages", "files") for e in merged.get(key, [])}
    for platform, document in by_platform.items():
        for key in ("packages", "files"):
            for element in document[key]:
                renamed = f"SPDXRef-{platform_prefix(platform)}.{element['SPDXID'][8:]}"
                assert by_id[renamed] == {**element, "SPDXID": renamed}


@given(INPUTS, st.randoms())
def test_the_same_sboms_in_any_order_give_the_same_bytes(
    by_platform: dict[str, Any],
    order: Random,
) -> None:
    platforms = list(by_platform)
    order.shuffle(platforms)
    shuffled = {platform: copy.deepcopy(by_platform[platform]) for platform in platforms}
    first = json.dumps(merged_sbom(INDEX, by_platform), sort_keys=True).encode()
    assert json.dumps(merged_sbom(INDEX, shuffled), sort_keys=True).encode() == first
    # ...and the document's own order too (the lead serializes with sorted keys anyway)
    assert json.dumps(merged_sbom(INDEX, shuffled)) == json.dumps(merged_sbom(INDEX, by_platform))


@given(INPUTS, INPUTS)
def test_different_sboms_give_different_namespaces(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    same = json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    namespaces = {merged_sbom(INDEX, d)["documentNamespace"] for d in (first, second)}
    assert len(namespaces) == (1 if same else 2)
