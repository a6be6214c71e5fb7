"""In-toto statements: what is made reads back the same, and every malformed one is refused.

The bytes are deterministic (sorted keys, compact) and name exactly one subject; reading any
bytes either gives the statement or an AttestationError naming the rule that was broken.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pipeline.attest.dsse import PAYLOAD_TYPE, pae
from pipeline.attest.errors import AttestationError
from pipeline.attest.statements import (
    PREDICATE_TYPES,
    PROVENANCE,
    SBOM,
    SIGNATURE,
    STATEMENT_TYPE,
    Statement,
    parse_statement,
    statement,
)

NAME = "ghcr.io/steinbeck/qm-nmr-calc-api"
HEX = "ab" * 32
DIGEST = f"sha256:{HEX}"

names = st.text(min_size=1, max_size=40).filter(lambda text: text.strip() != "")
digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda hex_: f"sha256:{hex_}")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
predicates = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


def document(**changes: Any) -> dict[str, Any]:
    """A valid statement document with ``changes`` applied (a value of None removes a key)."""
    base: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": NAME, "digest": {"sha256": HEX}}],
        "predicateType": SBOM,
        "predicate": {"spdxVersion": "SPDX-2.3"},
    }
    for key, value in changes.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def encoded(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_predicate_types_are_sbom_provenance_and_signature() -> None:
    assert PREDICATE_TYPES == (SBOM, PROVENANCE, SIGNATURE)
    assert SBOM == "https://spdx.dev/Document/v2.3"
    assert PROVENANCE == "https://slsa.dev/provenance/v1"
    assert SIGNATURE == "https://sigstore.dev/cosign/sign/v1"


def test_statement_is_in_toto_v1_with_one_subject_in_sorted_compact_json() -> None:
    raw = statement(NAME, DIGEST, PROVENANCE, {"b": 1, "a": [2]})

    assert raw == (
        b'{"_type":"https://in-toto.io/Statement/v1","predicate":{"a":[2],"b":1},'
        b'"predicateType":"https://slsa.dev/provenance/v1",'
        b'"subject":[{"digest":{"sha256":"'
        + HEX.encode()
        + b'"},"name":"'
        + NAME.encode()
        + b'"}]}'
    )


@given(name=names, digest=digests, predicate_type=names, predicate=predicates)
def test_every_statement_reads_back_as_made(
    name: str, digest: str, predicate_type: str, predicate: dict[str, Any]
) -> None:
    raw = statement(name, digest, predicate_type, predicate)

    assert parse_statement(raw) == Statement(name, digest, predicate_type, predicate)
    assert statement(name, digest, predicate_type, dict(reversed(predicate.items()))) == raw


@given(payload=st.binary(max_size=200))
def test_any_bytes_read_as_a_statement_or_are_refused_as_attestation_errors(
    payload: bytes,
) -> None:
    try:
        parsed = parse_statement(payload)
    except AttestationError:
        return
    assert isinstance(parsed, Statement)


@given(doc=json_values)
def test_any_json_that_is_not_a_statement_is_refused(doc: object) -> None:
    with pytest.raises(AttestationError):
        parse_statement(encoded(doc))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[" * 100_000, "nested too deeply"),
        (encoded([1, 2]), "JSON list; accepted: a JSON object"),
        (encoded(document(_type="https://in-toto.io/Statement/v0.1")), "_type is"),
        (encoded(document(_type=None)), "_type is None"),
        (encoded(document(subject=[])), "subject 0; accepted: exactly one subject"),
        (
            encoded(document(subject=[{"name": NAME, "digest": {"sha256": HEX}}] * 2)),
            "subject 2; accepted: exactly one subject",
        ),
        (encoded(document(subject={"name": NAME})), "exactly one subject"),
        (encoded(document(subject=["x"])), "subject is 'x'; accepted: an object"),
        (encoded(document(subject=[{"digest": {"sha256": HEX}}])), "subject name is None"),
        (encoded(document(subject=[{"name": " ", "digest": {"sha256": HEX}}])), "subject name"),
        (encoded(document(subject=[{"name": NAME}])), "subject digest is None"),
        (encoded(document(subject=[{"name": NAME, "digest": {"sha512": HEX}}])), "no sha256"),
        (
            encoded(document(subject=[{"name": NAME, "digest": {"sha256": HEX.upper()}}])),
            "64 lowercase hex digits",
        ),
        (
            encoded(document(subject=[{"name": NAME, "digest": {"sha256": HEX[:-1]}}])),
            "64 lowercase hex digits",
        ),
        (encoded(document(predicateType=None)), "predicateType is None"),
        (encoded(document(predicateType="")), "predicateType is ''"),
        (encoded(document(predicate=None)), "predicate is None; accepted: a JSON object"),
        (encoded(document(predicate=[1])), "predicate is [1]; accepted: a JSON object"),
        (
            b'{"_type":"' + STATEMENT_TYPE.encode() + b'","_type":"x"}',
            "duplicate key '_type'",
        ),
    ],
)
def test_malformed_statements_are_refused_saying_what_is_wrong(
    payload: bytes, message: str
) -> None:
    with pytest.raises(AttestationError, match="statement") as refused:
        parse_statement(payload)

    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", DIGEST, SBOM, {}), "subject name is ''"),
        ((NAME, "sha256:" + HEX.upper(), SBOM, {}), "subject digest"),
        ((NAME, "sha512:" + HEX * 2, SBOM, {}), "give sha256:<64 lowercase hex digits>"),
        ((NAME, HEX, SBOM, {}), "subject digest"),
        ((NAME, DIGEST, " ", {}), "predicate type is ' '"),
        ((NAME, DIGEST, SBOM, [1]), "predicate is list"),
        ((NAME, DIGEST, SBOM, {"x": float("nan")}), "predicate is not JSON data"),
        ((NAME, DIGEST, SBOM, {"x": object()}), "predicate is not JSON data"),
        ((NAME, DIGEST, SBOM, {"x": "\ud800"}), "predicate is not JSON data"),
    ],
)
def test_statements_that_could_not_be_read_back_are_never_made(
    args: tuple[Any, ...], message: str
) -> None:
    with pytest.raises(AttestationError) as refused:
        statement(*args)

    assert message in str(refused.value)


def test_pae_is_the_dsse_v1_encoding_with_byte_lengths() -> None:
    # The example of the DSSE v1.0 protocol document.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae(PAYLOAD_TYPE, "é".encode()) == b"DSSEv1 28 application/vnd.in-toto+json 2 \xc3\xa9"
