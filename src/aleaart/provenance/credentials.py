"""Content Credentials with the CAI's own SDK (c2pa-python, c2pa-rs underneath): sign a stored file's manifest,
read and validate one.

The signing identity is ALEAART_C2PA_CERT (a PEM chain, the end-entity certificate first) and ALEAART_C2PA_KEY
(its PEM private key: EC P-256/P-384/P-521 give ES256/384/512, RSA gives PS256, Ed25519 gives Ed25519). Without
them the service makes a local one once, in the cache folder: a root of its own and a signing certificate it
issued (the SDK refuses a certificate that signs itself). Validators then call the signer untrusted; everything
else validates. Files are signed once, where they are encoded, and never again.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aleaart.config import Settings
from aleaart.errors import InvalidParams, ModelUnavailable
from aleaart.provenance.claim import LABEL, Claim, metadata_provenance, pixel_hash

log = logging.getLogger(__name__)

LOCAL_FOLDER = "c2pa"  # under the cache folder: the local root, and the signing certificate and key it issued
CHAIN_FILE, KEY_FILE, ROOT_FILE = "chain.pem", "signer.key", "root.pem"
UNTRUSTED = "signingCredential.untrusted"
BUILD_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}  # a thumbnail would double a small PNG
EC_ALGORITHMS = {"secp256r1": c2pa.C2paSigningAlg.ES256, "secp384r1": c2pa.C2paSigningAlg.ES384,
                 "secp521r1": c2pa.C2paSigningAlg.ES512}


@dataclass(frozen=True)
class Check:
    """One failing validation check, and where it failed: the active manifest, or one of its ingredients."""

    code: str
    where: str  # "active manifest", or "ingredient <title>"
    explanation: str = ""

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "where": self.where, "explanation": self.explanation}


@dataclass(frozen=True)
class Read:
    """What a file's Content Credentials say, as the SDK validated them."""

    state: str  # "unsigned", "unreadable", or the SDK's Invalid / Valid / Trusted
    checks: tuple[Check, ...]  # the failing validation checks (the signer's trust among them), ingredients' too
    manifest: dict[str, Any] | None  # the active manifest
    error: str | None = None  # why the file could not be read at all

    @property
    def failures(self) -> tuple[str, ...]:
        """The failing codes, each once, the active manifest's first."""
        return tuple(dict.fromkeys(check.code for check in self.checks))

    @property
    def verdict(self) -> str:
        """Whether the credentials are intact, from the SDK alone: unsigned, unreadable, invalid (a check failed,
        in the manifest or an ingredient: changed after signing), untrusted (intact, by a signer no trust anchor
        here knows) or valid (intact, by a trusted signer)."""
        if self.state in ("unsigned", "unreadable"):
            return self.state
        if self.state == "Invalid" or self.tampered:
            return "invalid"
        return "untrusted" if self.untrusted or self.state != "Trusted" else "valid"

    @property
    def signer(self) -> str | None:
        info = (self.manifest or {}).get("signature_info") or {}
        return info.get("common_name") or info.get("issuer")

    @property
    def generator(self) -> str | None:
        """What made the credentials (its claim generator): aleaart's, or another tool's."""
        manifest = self.manifest or {}
        names = [" ".join(filter(None, (info.get("name"), info.get("version"))))
                 for info in manifest.get("claim_generator_info") or []]
        return ", ".join(n for n in names if n) or manifest.get("claim_generator")

    @property
    def binding_broken(self) -> bool:
        """C2PA's hard binding failed: the file's bytes are not the ones signed."""
        return any(code.startswith(("assertion.dataHash", "assertion.bmffHash", "assertion.boxesHash"))
                   for code in self.failures)

    @property
    def assertion(self) -> dict[str, Any] | None:
        """The aleaart assertion's data, if the manifest has one."""
        for assertion in (self.manifest or {}).get("assertions", []):
            if assertion.get("label") == LABEL:
                return assertion.get("data")
        return None

    @property
    def untrusted(self) -> bool:
        return UNTRUSTED in self.failures

    @property
    def tampered(self) -> bool:
        """The file's bytes are not the ones signed (C2PA's hard binding failed), or the manifest itself was
        changed (its assertions no longer match their hashes, or the signature the claim)."""
        return any(code != UNTRUSTED for code in self.failures)

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "state": self.state, "failures": list(self.failures),
                "failingChecks": [check.to_json() for check in self.checks], "signer": self.signer,
                "signerTrusted": self.state == "Trusted", "generator": self.generator, "error": self.error}


class Credentials:
    """One signing identity, and the reading settings (trust anchors) this deployment validates with."""

    def __init__(self, certificates: bytes, key: bytes, *, local: bool, tsa_url: str | None = None,
                 trust_anchors: bytes | None = None, chain: dict[str, Any] | None = None) -> None:
        self.certificates, self.key, self.local, self.tsa_url = certificates, key, local, tsa_url
        self.chain = chain  # the chain id and contract tokens are read from, stated in every token's credentials
        self.algorithm = signing_algorithm(key)
        self.subject = x509.load_pem_x509_certificates(certificates)[0].subject.rfc4514_string()
        self.trust_anchors = trust_anchors
        self._check()

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        common: dict[str, Any] = {
            "tsa_url": settings.c2pa_tsa_url,
            "trust_anchors": _read(settings.c2pa_trust_anchors, "ALEAART_C2PA_TRUST_ANCHORS")
            if settings.c2pa_trust_anchors else None,
            "chain": {"chainId": settings.chain_id, "contract": settings.params_contract},
        }
        if settings.c2pa_cert or settings.c2pa_key:
            if not (settings.c2pa_cert and settings.c2pa_key):
                raise InvalidParams("ALEAART_C2PA_CERT and ALEAART_C2PA_KEY go together: set both, or neither for "
                                    "a local signing key")
            return cls(_read(settings.c2pa_cert, "ALEAART_C2PA_CERT"), _read(settings.c2pa_key, "ALEAART_C2PA_KEY"),
                       local=False, **common)
        certificates, key = local_identity(settings.cache_dir / LOCAL_FOLDER)
        return cls(certificates, key, local=True, **common)

    def describe(self) -> dict[str, Any]:
        return {"signer": self.subject, "algorithm": self.algorithm.name, "local": self.local,
                "timestampAuthority": self.tsa_url}

    def sign(self, data: bytes, mime: str, claim: Claim) -> bytes:
        """``data`` with ``claim``'s manifest signed into it."""
        manifest, parent = claim.manifest(), claim.parent
        if parent is not None and parent.data is None:  # not at hand here: named by its key alone
            manifest["ingredients"] = [claim.ingredient()]
        with c2pa.Builder.from_json(json.dumps(manifest), context=c2pa.Context.from_dict(BUILD_SETTINGS)) \
                as builder, self._signer() as signer:
            if parent is not None and parent.data is not None:
                builder.add_ingredient(json.dumps(claim.ingredient()), parent.mime, io.BytesIO(parent.data))
            out = io.BytesIO()
            builder.sign(signer, mime, io.BytesIO(data), out)
            return out.getvalue()

    def read(self, data: bytes, mime: str | None = None) -> Read:
        return read_credentials(data, mime, trust_anchors=self.trust_anchors)

    def _signer(self) -> c2pa.Signer:
        info = c2pa.C2paSignerInfo(self.algorithm, self.certificates, self.key, self.tsa_url)
        return c2pa.Signer.from_info(info)

    def _check(self) -> None:
        """Sign a tiny PNG once, so a bad certificate or key stops the start, not every render."""
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (1, 1)).save(buffer, format="PNG")
        try:
            self.sign(buffer.getvalue(), "image/png", Claim(title="check", action="c2pa.created",
                                                              software_agent="aleaart", assertion={}))
        except c2pa.C2paError as error:
            raise ModelUnavailable(f"the C2PA signing certificate or key cannot sign ({error}); check "
                                   "ALEAART_C2PA_CERT and ALEAART_C2PA_KEY") from None


def read_credentials(data: bytes, mime: str | None = None, *, trust_anchors: bytes | None = None) -> Read:
    """The Content Credentials in ``data``, validated; ``trust_anchors``: the roots whose signers are trusted."""
    context = c2pa.Context.from_dict({"trust": {"trust_anchors": trust_anchors.decode()}}) if trust_anchors else None
    try:
        reader = c2pa.Reader.try_create(mime or "", io.BytesIO(data), None, context) if context else \
            c2pa.Reader.try_create(mime or "", io.BytesIO(data))
    except c2pa.C2paError as error:
        return Read(state="unreadable", checks=(), manifest=None, error=str(error).splitlines()[0][:300])
    if reader is None:
        return Read(state="unsigned", checks=(), manifest=None)
    with reader:
        manifest = reader.get_active_manifest()
        return Read(state=reader.get_validation_state() or "Invalid",
                    checks=failing_checks(reader.get_validation_results() or {}, manifest), manifest=manifest)


def failing_checks(results: dict[str, Any], manifest: dict[str, Any] | None) -> tuple[Check, ...]:
    """Every failing check of the SDK's validation results: the active manifest's, then each ingredient's (named
    by its title where the manifest lists it)."""
    checks = [Check(f.get("code", "?"), "active manifest", f.get("explanation", ""))
              for f in (results.get("activeManifest") or {}).get("failure", [])]
    titles = ingredient_titles(manifest)
    for delta in results.get("ingredientDeltas") or []:
        uri = delta.get("ingredientAssertionURI", "")
        where = f"ingredient {titles.get(uri.rsplit('/', 1)[-1]) or uri.rsplit('/', 1)[-1] or '?'}"
        checks += [Check(f.get("code", "?"), where, f.get("explanation", ""))
                   for f in (delta.get("validationDeltas") or {}).get("failure", [])]
    return tuple(checks)


def ingredient_titles(manifest: dict[str, Any] | None) -> dict[str, str]:
    """An ingredient assertion's label (c2pa.ingredient.v3, c2pa.ingredient.v3__1, ...) → the ingredient's title."""
    titles = {}
    for index, ingredient in enumerate((manifest or {}).get("ingredients") or []):
        label = ingredient.get("label") or ("c2pa.ingredient.v3" + (f"__{index}" if index else ""))
        titles[label] = ingredient.get("title") or label
    return titles


def signing_algorithm(key_pem: bytes) -> c2pa.C2paSigningAlg:
    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in EC_ALGORITHMS:
        return EC_ALGORITHMS[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return c2pa.C2paSigningAlg.PS256
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return c2pa.C2paSigningAlg.ED25519
    raise InvalidParams(f"ALEAART_C2PA_KEY is a {type(key).__name__}: use an EC (P-256/384/521), RSA or Ed25519 key")


def _read(path: Path, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise InvalidParams(f"{name}={path} cannot be read: {error.strerror or error}") from None


def local_identity(folder: Path) -> tuple[bytes, bytes]:
    """The local signing chain and key, made once: written aside and renamed in whole, so processes starting
    together on one cache folder (an API and its workers) all sign as the first one that finished."""
    if not (folder / KEY_FILE).is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".c2pa-", dir=folder.parent))
        try:
            _write_identity(staging)
            os.rename(staging, folder)
            log.warning("made a local C2PA signing certificate in %s: validators will call it untrusted; set "
                        "ALEAART_C2PA_CERT and ALEAART_C2PA_KEY for one a trust list knows", folder)
        except OSError:  # another process made it first: use theirs
            pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return (folder / CHAIN_FILE).read_bytes(), (folder / KEY_FILE).read_bytes()


def _write_identity(folder: Path) -> None:
    now = datetime.datetime.now(datetime.UTC)
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _certificate(_name("aleaart local root"), _name("aleaart local root"), root_key.public_key(), root_key,
                        now, ca=True)
    leaf = _certificate(_name("aleaart local signer"), root.subject, key.public_key(), root_key, now, ca=False)
    pem = serialization.Encoding.PEM
    (folder / CHAIN_FILE).write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    (folder / ROOT_FILE).write_bytes(root.public_bytes(pem))
    (folder / KEY_FILE).write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    os.chmod(folder / KEY_FILE, 0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aleaart (local, untrusted)")])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: Any, signing_key: Any,
                 now: datetime.datetime, *, ca: bool) -> x509.Certificate:
    """A root (``ca``) or the signing certificate C2PA asks for: digital signature, email protection, not a CA."""
    usage = dict(digital_signature=not ca, content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if not ca:
        builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                                  critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def file_provenance(data: bytes, verify_url: str | None = None) -> dict[str, Any]:
    """A stored PNG's provenance for its metadata: the pixel hash and recipe class its credentials record (the
    pixels' own hash for a file without them)."""
    assertion = read_credentials(data, "image/png").assertion
    recorded = ((assertion or {}).get("pixels") or {}).get("sha256")
    if recorded is None:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            recorded = pixel_hash(image)
    return metadata_provenance(assertion, recorded, verify_url)
