"""Statements signed into Sigstore bundles: what verifies, and everything that must not.

The throwaway identity signs and verifies in memory: a bundle v0.3 with the leaf certificate, a
DSSE envelope and no log entry; its verifier refuses a changed statement, a certificate from
another throwaway CA and a changed payload type. The production signer and verifier cannot reach
Fulcio or Rekor here: what they refuse offline is pinned (tokens, bundles without a log entry).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography import x509
from pipeline.attest.dsse import PAYLOAD_TYPE, pae
from pipeline.attest.errors import AttestationError
from pipeline.attest.signing import (
    BUNDLE_MEDIA_TYPE,
    GITHUB_ISSUER,
    THROWAWAY_IDENTITY,
    KeylessSigner,
    SigstoreVerifier,
    ThrowawaySigner,
    read_bundle,
    unverified_statement,
)
from pipeline.attest.statements import (
    PROVENANCE,
    SBOM,
    Statement,
    statement,
)

NAME = "ghcr.io/steinbeck/qm-nmr-calc-api"
DIGEST = "sha256:" + "cd" * 32
OTHER_DIGEST = "sha256:" + "ef" * 32
STATEMENT = statement(NAME, DIGEST, SBOM, {"spdxVersion": "SPDX-2.3", "packages": []})
WORKFLOW = "https://github.com/steinbeck/qm-nmr-calc/.github/workflows/release.yml@refs/tags/v2.4.0"


@pytest.fixture(scope="module")
def signer() -> ThrowawaySigner:
    return ThrowawaySigner()


def edited(bundle: bytes, change: Any) -> bytes:
    """``bundle`` with ``change(document)`` applied."""
    document = json.loads(bundle)
    change(document)
    return json.dumps(document).encode()


def set_payload(document: dict[str, Any], payload: bytes) -> None:
    document["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()


def test_a_throwaway_bundle_verifies_with_its_verifier(signer: ThrowawaySigner) -> None:
    bundle = signer.sign(STATEMENT)

    assert signer.verifier().verify(bundle) == Statement(
        NAME, DIGEST, SBOM, {"spdxVersion": "SPDX-2.3", "packages": []}
    )
    assert signer.identity == THROWAWAY_IDENTITY
    assert "nothing is trusted" in signer.identity


def test_a_throwaway_bundle_is_a_v03_bundle_with_leaf_certificate_and_no_log_entry(
    signer: ThrowawaySigner,
) -> None:
    document = json.loads(signer.sign(STATEMENT))

    assert document["mediaType"] == BUNDLE_MEDIA_TYPE
    assert document["verificationMaterial"]["tlogEntries"] == []
    certificate = x509.load_der_x509_certificate(
        base64.b64decode(document["verificationMaterial"]["certificate"]["rawBytes"])
    )
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False
    envelope = document["dsseEnvelope"]
    assert envelope["payloadType"] == PAYLOAD_TYPE
    assert base64.b64decode(envelope["payload"]) == STATEMENT
    assert len(envelope["signatures"]) == 1


def test_the_signature_covers_the_pae_of_type_and_payload(signer: ThrowawaySigner) -> None:
    contents = read_bundle(signer.sign(STATEMENT))
    key = contents.certificate.public_key()

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(contents.envelope.signature, pae(PAYLOAD_TYPE, STATEMENT), ec.ECDSA(hashes.SHA256()))


def test_a_tampered_statement_does_not_verify(signer: ThrowawaySigner) -> None:
    other = statement(NAME, OTHER_DIGEST, SBOM, {"spdxVersion": "SPDX-2.3", "packages": []})
    bundle = edited(signer.sign(STATEMENT), lambda doc: set_payload(doc, other))

    with pytest.raises(AttestationError, match="DSSE signature does not verify"):
        signer.verifier().verify(bundle)
    assert unverified_statement(bundle).subject_digest == OTHER_DIGEST  # what it claims


def test_a_certificate_swapped_for_another_throwaway_signers_does_not_verify(
    signer: ThrowawaySigner,
) -> None:
    foreign = json.loads(ThrowawaySigner().sign(STATEMENT))["verificationMaterial"]

    def swap(document: dict[str, Any]) -> None:
        document["verificationMaterial"] = foreign

    with pytest.raises(AttestationError, match="not issued by this rehearsal's throwaway CA"):
        signer.verifier().verify(edited(signer.sign(STATEMENT), swap))


def test_a_whole_bundle_from_another_throwaway_signer_does_not_verify(
    signer: ThrowawaySigner,
) -> None:
    with pytest.raises(AttestationError, match="throwaway CA"):
        signer.verifier().verify(ThrowawaySigner().sign(STATEMENT))


def test_a_changed_payload_type_does_not_verify(signer: ThrowawaySigner) -> None:
    def retype(document: dict[str, Any]) -> None:
        document["dsseEnvelope"]["payloadType"] = "application/json"

    with pytest.raises(AttestationError, match="payloadType is 'application/json'"):
        signer.verifier().verify(edited(signer.sign(STATEMENT), retype))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda doc: doc.update(mediaType="application/json"), "bundle mediaType"),
        (lambda doc: doc.pop("verificationMaterial"), "no verificationMaterial"),
        (
            lambda doc: doc["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}),
            "not a DER X.509 certificate",
        ),
        (lambda doc: doc["dsseEnvelope"].update(signatures=[]), "exactly one signature"),
        (lambda doc: doc["dsseEnvelope"].update(payload="%%%"), "payload is not base64"),
        (lambda doc: doc.pop("dsseEnvelope"), "dsseEnvelope is not an object"),
    ],
)
def test_malformed_bundles_are_refused_saying_what_is_wrong(
    signer: ThrowawaySigner, change: Any, message: str
) -> None:
    with pytest.raises(AttestationError, match=message):
        signer.verifier().verify(edited(signer.sign(STATEMENT), change))


def test_a_malformed_statement_is_never_signed(signer: ThrowawaySigner) -> None:
    with pytest.raises(AttestationError, match="exactly one subject"):
        signer.sign(json.dumps({"_type": "https://in-toto.io/Statement/v1"}).encode())


def token(**claims: Any) -> str:
    """An unsigned-by-anyone-trusted JWT with GitHub-like claims (``claims`` override)."""
    now = int(time.time())
    base = {
        "iss": GITHUB_ISSUER,
        "sub": WORKFLOW,
        "aud": "sigstore",
        "iat": now - 10,
        "exp": now + 300,
    }
    return jwt.encode({**base, **claims}, "not-a-real-key-" + "x" * 32, algorithm="HS256")


def test_keyless_signer_names_the_token_identity_without_contacting_anyone() -> None:
    keyless = KeylessSigner(token())

    assert keyless.identity.startswith(f"keyless: {WORKFLOW} (issuer {GITHUB_ISSUER};")


@pytest.mark.parametrize(
    ("make_token", "message"),
    [
        (lambda: "not-a-jwt", "malformed or missing claims"),
        (lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), "expired at"),
        (lambda: token(aud="another-audience"), "malformed or missing claims"),
        (lambda: "", "token is empty"),
    ],
)
def test_keyless_signer_refuses_unusable_tokens_without_quoting_them(
    make_token: Callable[[], str], message: str
) -> None:
    raw = make_token()  # made when the test runs: a token made at collection may have expired
    with pytest.raises(AttestationError, match=message) as refused:
        KeylessSigner(raw)

    if message.startswith("malformed"):
        assert "accepted: an unexpired JWT with audience sigstore" in str(refused.value)
    if raw:
        assert raw not in str(refused.value)
        assert raw.split(".")[0] not in str(refused.value)


def test_keyless_signer_refuses_a_malformed_statement_before_any_network() -> None:
    with pytest.raises(AttestationError, match="statement is not JSON"):
        KeylessSigner(token()).sign(b"{")


def test_sigstore_verifier_refuses_a_bundle_without_a_log_entry(signer: ThrowawaySigner) -> None:
    verifier = SigstoreVerifier(WORKFLOW, GITHUB_ISSUER, offline=True)

    with pytest.raises(AttestationError, match="expected exactly one log entry") as refused:
        verifier.verify(signer.sign(STATEMENT))
    assert WORKFLOW in str(refused.value)


def test_sigstore_verifier_refuses_what_is_not_a_bundle() -> None:
    verifier = SigstoreVerifier(WORKFLOW, GITHUB_ISSUER, offline=True)

    with pytest.raises(AttestationError, match="does not verify"):
        verifier.verify(b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}')
    with pytest.raises(AttestationError, match="does not verify"):
        verifier.verify(b"not json")


def test_keyless_statement_of_a_provenance_predicate_is_what_gets_signed() -> None:
    # The same bytes go to sigstore-python's Statement, which accepts them as in-toto v1.
    from sigstore.dsse import Statement as SigstoreStatement

    raw = statement(NAME, DIGEST, PROVENANCE, {"buildDefinition": {}, "runDetails": {}})

    assert SigstoreStatement(raw)._contents == raw  # the bytes it signs
