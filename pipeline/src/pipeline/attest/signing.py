"""Signing statements into Sigstore bundles (v0.3, a DSSE envelope) and verifying them.

Production signs keyless: GitHub's OIDC token (``github_oidc_token``) buys a short-lived Fulcio
certificate and the signature is logged in Rekor (``KeylessSigner``, sigstore-python 4.x);
``SigstoreVerifier`` checks such bundles against Sigstore's trust root and one workflow identity.
Rehearsals and tests sign with a ``ThrowawaySigner``: an ephemeral P-256 CA and leaf certificate
held in memory, trusted by nobody but its own ``ThrowawayVerifier``, and it says so.

Signers are synchronous (sigstore-python is): callers run ``sign`` in a thread.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pipeline.attest.dsse import PAYLOAD_TYPE, Envelope, envelope_document, pae, parse_envelope
from pipeline.attest.errors import AttestationError
from pipeline.attest.statements import Statement, parse_statement
from pipeline.oci.names import is_loopback_ip
from pipeline.oci.text import printable

if TYPE_CHECKING:
    from sigstore.oidc import IdentityToken
    from sigstore.sign import Signer as SigstoreSigner
    from sigstore.verify import Verifier as SigstoreLibraryVerifier

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
"""A Sigstore bundle v0.3: its own ``mediaType`` and that of the OCI artifact storing it."""
THROWAWAY_IDENTITY = "throwaway identity (rehearsal only; nothing is trusted)"
THROWAWAY_SAN = "urn:qm-nmr-calc:rehearsal:throwaway"
"""The throwaway leaf certificate's identity (a URI SAN no real signer has)."""
THROWAWAY_VALIDITY = timedelta(days=1)
"""How long a rehearsal's leaf certificate lives: a whole release, however slow."""
CA_VALIDITY = timedelta(days=2)
CLOCK_SKEW = timedelta(minutes=5)
MAX_BUNDLE = 8 * 1024 * 1024
"""Bytes of a bundle read at most (the registry client reads a blob up to this size)."""
OIDC_AUDIENCE = "sigstore"
OIDC_TIMEOUT = 10.0
OIDC_ATTEMPTS = 3
OIDC_PAUSE = 1.0
MAX_OIDC_ANSWER = 64 * 1024
MAX_ERROR_TEXT = 200
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
"""The OIDC issuer of GitHub Actions tokens, for ``SigstoreVerifier``."""


class Signer(Protocol):
    """What signs a statement into a Sigstore bundle."""

    identity: str
    """One line for the release output: who signed, and how far to trust it."""

    def sign(self, statement: bytes) -> bytes:
        """The Sigstore bundle v0.3 JSON of ``statement`` in a DSSE envelope (PAYLOAD_TYPE)."""
        ...


class CertifiedSigner(Signer, Protocol):
    """A signer whose signing certificate has a lifetime, obtained when asked for."""

    def certify(self) -> float:
        """Obtain the signing certificate now (if not yet); its ``notAfter``, in epoch seconds.

        Past it, ``sign`` fails: the caller makes a new signer first.
        """
        ...


class Verifier(Protocol):
    """What checks a bundle and returns the statement it signs."""

    def verify(self, bundle: bytes) -> Statement:
        """The signed statement; AttestationError if the bundle cannot be trusted."""
        ...


@dataclass(frozen=True)
class BundleContents:
    """A bundle's parts as written, before any signature is checked."""

    certificate: x509.Certificate
    envelope: Envelope
    tlog_entries: int


def bundle_json(certificate: x509.Certificate, envelope: Envelope) -> bytes:
    """A Sigstore bundle v0.3 with the leaf certificate and no transparency log entry."""
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "certificate": {
                "rawBytes": base64.b64encode(
                    certificate.public_bytes(serialization.Encoding.DER)
                ).decode()
            },
            "tlogEntries": [],
        },
        "dsseEnvelope": envelope_document(envelope),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def read_bundle(bundle: bytes) -> BundleContents:
    """The certificate and DSSE envelope of a bundle v0.3, without trusting either."""
    if len(bundle) > MAX_BUNDLE:
        raise AttestationError(f"bundle is over {MAX_BUNDLE} bytes; refused")
    try:
        document = json.loads(bundle)
    except (ValueError, RecursionError):
        raise AttestationError("bundle is not JSON; accepted: a Sigstore bundle v0.3") from None
    if not isinstance(document, dict) or document.get("mediaType") != BUNDLE_MEDIA_TYPE:
        kind = document.get("mediaType") if isinstance(document, dict) else None
        raise AttestationError(
            f"bundle mediaType is {printable(str(kind))[:80]!r}; accepted: {BUNDLE_MEDIA_TYPE}"
        )
    material = document.get("verificationMaterial")
    if not isinstance(material, dict):
        raise AttestationError("bundle has no verificationMaterial object")
    entries = material.get("tlogEntries", [])
    if not isinstance(entries, list):
        raise AttestationError("bundle tlogEntries is not a list")
    return BundleContents(
        certificate=_certificate(material.get("certificate")),
        envelope=parse_envelope(document.get("dsseEnvelope")),
        tlog_entries=len(entries),
    )


def unverified_statement(bundle: bytes) -> Statement:
    """The statement a bundle carries, its signature NOT checked (to report what it claims)."""
    envelope = read_bundle(bundle).envelope
    _check_payload_type(envelope)
    return parse_statement(envelope.payload)


class ThrowawayCA:
    """An ephemeral certificate authority made here, in memory: nobody trusts it but its verifier.

    Stands in for Fulcio where Fulcio cannot be reached: it issues short or long leaf
    certificates at a given time (the tests' clock), each for one signing key.
    """

    def __init__(self, *, now: datetime | None = None, validity: timedelta = CA_VALIDITY) -> None:
        """A new CA, valid from ``now`` (the clock's time by default) for ``validity``."""
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = _ca_certificate(self._key, now or datetime.now(UTC), validity)

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey,
        *,
        now: datetime,
        validity: timedelta,
        identity: str = THROWAWAY_SAN,
    ) -> x509.Certificate:
        """A code-signing leaf for ``public_key`` valid from ``now`` for ``validity``."""
        return _leaf_certificate(
            public_key, self._key, self.certificate, now, validity, identity=identity
        )

    def verifier(self, *, now: Callable[[], datetime] | None = None) -> ThrowawayVerifier:
        """The verifier that trusts this CA, and nothing else (valid at ``now``: the clock's)."""
        return ThrowawayVerifier(self.certificate, now=now)


class ThrowawaySigner:
    """Signs with an ephemeral CA and leaf certificate made here, in memory; nobody trusts it.

    For ``rehearse`` and the tests: the bundle has the leaf certificate in verificationMaterial
    and no transparency log entry. Only ``self.verifier()`` accepts its bundles.
    """

    identity = THROWAWAY_IDENTITY

    def __init__(
        self,
        *,
        ca: ThrowawayCA | None = None,
        now: datetime | None = None,
        validity: timedelta = THROWAWAY_VALIDITY,
        identity: str = THROWAWAY_SAN,
    ) -> None:
        """A new key and leaf valid from ``now`` for ``validity``, from ``ca`` (or a new CA)."""
        now = now or datetime.now(UTC)
        self._ca = ca or ThrowawayCA(now=now)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._leaf = self._ca.issue(
            self._key.public_key(), now=now, validity=validity, identity=identity
        )

    def __repr__(self) -> str:
        return f"ThrowawaySigner(ca serial {self._ca.certificate.serial_number:x})"

    def certify(self) -> float:
        """The leaf certificate's ``notAfter`` (it exists from the start), in epoch seconds."""
        return self._leaf.not_valid_after_utc.timestamp()

    def sign(self, statement: bytes) -> bytes:
        """The bundle of ``statement`` (checked first: a malformed one is never signed)."""
        parse_statement(statement)
        signature = self._key.sign(pae(PAYLOAD_TYPE, statement), ec.ECDSA(hashes.SHA256()))
        return bundle_json(self._leaf, Envelope(PAYLOAD_TYPE, statement, signature))

    def verifier(self) -> ThrowawayVerifier:
        """The verifier that trusts this signer's CA, and nothing else."""
        return self._ca.verifier()


class ThrowawayVerifier:
    """Accepts bundles whose leaf certificate one throwaway CA issued, valid now, signature good."""

    def __init__(self, ca: x509.Certificate, *, now: Callable[[], datetime] | None = None) -> None:
        """Trusts ``ca``; ``now`` gives the time the leaf must be valid at (the clock's)."""
        self._ca = ca
        self._now = now or partial(datetime.now, UTC)

    def verify(self, bundle: bytes) -> Statement:
        """The statement; AttestationError for another CA, an expired leaf or a bad signature."""
        contents = read_bundle(bundle)
        leaf = contents.certificate
        try:
            leaf.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature):
            raise AttestationError(
                "bundle certificate was not issued by this rehearsal's throwaway CA"
            ) from None
        now = self._now()
        if not leaf.not_valid_before_utc - CLOCK_SKEW <= now <= leaf.not_valid_after_utc:
            raise AttestationError("bundle certificate is not valid now (expired or not yet)")
        envelope = contents.envelope
        _check_payload_type(envelope)
        key = leaf.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise AttestationError("bundle certificate key is not an EC key; accepted: P-256")
        try:
            key.verify(
                envelope.signature,
                pae(envelope.payload_type, envelope.payload),
                ec.ECDSA(hashes.SHA256()),
            )
        except InvalidSignature:
            raise AttestationError(
                "DSSE signature does not verify: the payload or its type was changed"
            ) from None
        return parse_statement(envelope.payload)


class KeylessSigner:
    """Signs keyless with sigstore-python 4.x: Fulcio certificate, Rekor entry (production).

    One signer holds one Fulcio certificate (10 minutes) obtained with one OIDC token (GitHub's
    live 5 minutes): ``pipeline.attest.identity.JustInTimeSigner`` makes each one just before it
    is needed, from a fresh token, and a new one before the certificate lapses.
    UNVERIFIED: nothing here reached Fulcio or Rekor; the signing path follows sigstore-python
    4.5's public API (``ClientTrustConfig.production``, ``SigningContext.from_trust_config``,
    ``Signer.sign_dsse``). Tested offline: malformed and expired tokens are refused clearly.
    """

    def __init__(self, identity_token: str) -> None:
        """``identity_token``: an OIDC token with audience ``sigstore`` (``github_oidc_token``)."""
        self._token = _identity_token(identity_token)
        self.identity = (
            f"keyless: {printable(self._token.identity)} "
            f"(issuer {printable(self._token.issuer)}; Fulcio certificate, Rekor entry)"
        )
        self._lock = threading.Lock()
        self._signer: SigstoreSigner | None = None

    def __repr__(self) -> str:
        return f"KeylessSigner({self.identity!r})"

    def certify(self) -> float:
        """Request the Fulcio certificate now (once); its ``notAfter``, in epoch seconds.

        UNVERIFIED: reads the certificate through sigstore-python's ``Signer._signing_cert``
        (the cached one; a private method, present in 1.x to 4.x).
        """
        with self._lock:
            signer = self._certified()
            try:
                certificate: x509.Certificate = signer._signing_cert()
            except Exception as exc:  # ExpiredCertificate: a private module's plain Exception
                raise _signing_failed(exc) from None
        return certificate.not_valid_after_utc.timestamp()

    def sign(self, statement: bytes) -> bytes:
        """The bundle of ``statement`` from Fulcio and Rekor (one signing at a time)."""
        parse_statement(statement)
        from sigstore.dsse import Statement as SigstoreStatement

        with self._lock:
            signer = self._certified()
            try:
                bundle = signer.sign_dsse(SigstoreStatement(statement))
            except Exception as exc:
                raise _signing_failed(exc) from None
        return bundle.to_json().encode()

    def _certified(self) -> SigstoreSigner:
        """The sigstore-python signer, made (and its certificate requested) on first use."""
        if self._signer is None:
            try:
                self._signer = self._new_signer()
            except Exception as exc:
                raise _signing_failed(exc) from None
        return self._signer

    def _new_signer(self) -> SigstoreSigner:
        """A sigstore-python signer on the production trust config (refreshed through TUF)."""
        from sigstore.models import ClientTrustConfig
        from sigstore.sign import SigningContext

        context = SigningContext.from_trust_config(ClientTrustConfig.production())
        with context.signer(self._token, cache=True) as signer:
            return signer


def _signing_failed(exc: Exception) -> AttestationError:
    """A failure inside sigstore-python, as one AttestationError that never holds the token.

    sigstore-python raises plain Exception subclasses from private modules (Fulcio, Rekor,
    timestamp and expiry errors: ``ExpiredIdentity``, ``ExpiredCertificate``) besides its own
    Error and requests' errors: each one means this signing failed.
    """
    return AttestationError(f"keyless signing failed: {type(exc).__name__}: {printable(str(exc))}")


class SigstoreVerifier:
    """Verifies production bundles: Sigstore's trust root, Rekor entry, one signer identity.

    ``identity`` is the certificate's SAN exactly (for a workflow:
    ``https://github.com/OWNER/REPO/.github/workflows/release.yml@refs/tags/vX.Y.Z``), ``issuer``
    the OIDC issuer (``GITHUB_ISSUER``). ``offline`` uses the trust root sigstore-python ships
    instead of refreshing it through TUF.
    UNVERIFIED: no real production bundle was verified here (no Fulcio, Rekor or GitHub); tested
    offline only in refusing bundles it must refuse.
    """

    def __init__(self, identity: str, issuer: str, *, offline: bool = False) -> None:
        if not identity or not issuer:
            raise ValueError("give the signer identity and the OIDC issuer it must come from")
        self.identity = identity
        self.issuer = issuer
        self._offline = offline
        self._lock = threading.Lock()
        self._verifier: SigstoreLibraryVerifier | None = None

    def __repr__(self) -> str:
        return f"SigstoreVerifier(identity={self.identity!r}, issuer={self.issuer!r})"

    def verify(self, bundle: bytes) -> Statement:
        """The statement, after sigstore-python verified the bundle against the policy."""
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle
        from sigstore.verify.policy import Identity

        if len(bundle) > MAX_BUNDLE:
            raise AttestationError(f"bundle is over {MAX_BUNDLE} bytes; refused")
        try:
            parsed = Bundle.from_json(bundle)
            policy = Identity(identity=self.identity, issuer=self.issuer)
            payload_type, payload = self._library_verifier().verify_dsse(parsed, policy)
        except (SigstoreError, OSError, ValueError) as exc:
            raise AttestationError(
                f"bundle does not verify for {self.identity} ({self.issuer}): "
                f"{type(exc).__name__}: {printable(str(exc))[:MAX_ERROR_TEXT]}"
            ) from None
        if payload_type != PAYLOAD_TYPE:
            raise AttestationError(
                f"DSSE payloadType is {printable(payload_type)[:80]!r}; accepted: {PAYLOAD_TYPE}"
            )
        return parse_statement(payload)

    def _library_verifier(self) -> SigstoreLibraryVerifier:
        """sigstore-python's production verifier, made once."""
        from sigstore.verify import Verifier as LibraryVerifier

        with self._lock:
            if self._verifier is None:
                self._verifier = LibraryVerifier.production(offline=self._offline)
            return self._verifier


def github_oidc_token(request_url: str, request_token: str) -> str:
    """An OIDC token for Sigstore from GitHub Actions (audience ``sigstore``).

    ``request_url`` and ``request_token`` are the job's ``ACTIONS_ID_TOKEN_REQUEST_URL`` and
    ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` (the job needs ``permissions: id-token: write``). HTTPS
    only, except to a loopback IP address; the request token never appears in an error.
    """
    if not request_token:
        raise AttestationError("no OIDC request token; the job needs permissions: id-token: write")
    url = _oidc_url(request_url)
    where = f"GitHub OIDC token request to {printable(url.host)}"
    headers = {"Authorization": f"bearer {request_token}", "Accept": "application/json"}
    with httpx.Client(timeout=OIDC_TIMEOUT, follow_redirects=False) as client:
        for attempt in range(OIDC_ATTEMPTS):
            status, body = _oidc_exchange(client, url, headers, where, request_token)
            if status < 500 or attempt == OIDC_ATTEMPTS - 1:
                break
            time.sleep(OIDC_PAUSE)
    if status != 200:
        text = _scrubbed(body.decode("utf-8", "replace"), request_token)
        hint = " (the job needs permissions: id-token: write)" if status in (401, 403) else ""
        raise AttestationError(f"{where} answered {status}{hint}: {text}")
    return _oidc_value(body, where, request_token)


def _oidc_url(request_url: str) -> httpx.URL:
    """The request URL with ``audience=sigstore``; HTTPS unless to a loopback IP address."""
    try:
        url = httpx.URL(request_url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise AttestationError("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL") from None
    if url.scheme != "https" and not (url.scheme == "http" and is_loopback_ip(url.host)):
        raise AttestationError(
            f"OIDC request URL scheme {printable(url.scheme)!r} refused; accepted: https "
            "(http only to a loopback IP address)"
        )
    return url.copy_merge_params({"audience": OIDC_AUDIENCE})


def _oidc_exchange(
    client: httpx.Client, url: httpx.URL, headers: dict[str, str], where: str, secret: str
) -> tuple[int, bytes]:
    """One GET: the status and at most MAX_OIDC_ANSWER bytes of the body."""
    try:
        with client.stream("GET", url, headers=headers) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_OIDC_ANSWER:
                    raise AttestationError(f"{where}: answer over {MAX_OIDC_ANSWER} bytes")
            return response.status_code, bytes(body)
    except httpx.HTTPError as exc:
        text = _scrubbed(f"{type(exc).__name__}: {exc}", secret)
        raise AttestationError(f"{where} got no answer: {text}") from None


def _oidc_value(body: bytes, where: str, secret: str) -> str:
    """The token in ``{"value": "<jwt>"}``."""
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError):
        document = None
    value = document.get("value") if isinstance(document, dict) else None
    if not isinstance(value, str) or not value or value == secret:
        raise AttestationError(f"{where}: the answer holds no token (no 'value' string)")
    return value


def _scrubbed(text: str, secret: str) -> str:
    """Server or library text, the secret removed, escaped and shortened."""
    safe = printable(text.replace(secret, "***")).replace(secret, "***")
    return safe if len(safe) <= MAX_ERROR_TEXT else safe[: MAX_ERROR_TEXT - 3] + "..."


def _identity_token(raw: str) -> IdentityToken:
    """sigstore-python's identity token, or an AttestationError (never quoting the token)."""
    from sigstore.oidc import IdentityError, IdentityToken

    if not raw or not raw.strip():
        raise AttestationError("the OIDC identity token is empty")
    expiry = _claimed_expiry(raw)
    if expiry is not None and expiry <= time.time():
        when = datetime.fromtimestamp(expiry, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise AttestationError(
            f"the OIDC identity token expired at {when}; request a fresh one just before signing"
        )
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise AttestationError(
            f"the OIDC identity token is refused: {printable(str(exc))[:MAX_ERROR_TEXT]}; "
            "accepted: an unexpired JWT with audience sigstore"
        ) from None


def _claimed_expiry(raw: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified (to say "expired" rather than "malformed")."""
    parts = raw.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        return None
    expiry = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(expiry, bool) or not isinstance(expiry, int | float):
        return None
    return float(expiry)


def _check_payload_type(envelope: Envelope) -> None:
    """Refuse an envelope that does not carry an in-toto statement."""
    if envelope.payload_type != PAYLOAD_TYPE:
        raise AttestationError(
            f"DSSE payloadType is {printable(envelope.payload_type)[:80]!r}; "
            f"accepted: {PAYLOAD_TYPE}"
        )


def _certificate(document: object) -> x509.Certificate:
    """The leaf certificate of ``verificationMaterial.certificate`` (DER, base64)."""
    raw = document.get("rawBytes") if isinstance(document, dict) else None
    if not isinstance(raw, str) or not raw:
        raise AttestationError(
            "bundle has no verificationMaterial.certificate.rawBytes; accepted: a bundle v0.3"
        )
    try:
        return x509.load_der_x509_certificate(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        raise AttestationError("bundle certificate is not a DER X.509 certificate") from None


def _ca_certificate(
    key: ec.EllipticCurvePrivateKey, now: datetime, validity: timedelta
) -> x509.Certificate:
    """A self-signed CA certificate for one throwaway run."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qm-nmr-calc throwaway CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )


def _leaf_certificate(
    public_key: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    now: datetime,
    validity: timedelta,
    *,
    identity: str,
) -> x509.Certificate:
    """A code-signing leaf certificate for ``public_key`` naming ``identity`` (a URI)."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity)]),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    """Key usage: signing certificates (a CA) or digital signatures (a leaf)."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
