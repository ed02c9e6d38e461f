"""Signing and reading Content Credentials with the CAI's SDK: the local identity, given certificates, trust."""

from __future__ import annotations

import datetime
import io
import threading

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from PIL import Image

from aleaart.config import Settings
from aleaart.errors import InvalidParams, ModelUnavailable
from aleaart.provenance.claim import LABEL, Claim
from aleaart.provenance.credentials import LOCAL_FOLDER, ROOT_FILE, Credentials, _certificate, _name, read_credentials

CLAIM = Claim(title="t.png", action="c2pa.created", software_agent="aleaart test", assertion={"key": "k"})


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_without_a_certificate_a_local_one_is_made_once_and_its_signer_is_untrusted(tmp_path):
    settings = Settings(cache_dir=tmp_path)
    first, again = Credentials.from_settings(settings), Credentials.from_settings(settings)
    assert first.local and first.certificates == again.certificates and first.key == again.key
    read = first.read(first.sign(png(), "image/png", CLAIM))
    assert read.state == "Valid" and read.failures == ("signingCredential.untrusted",)
    assert read.untrusted and not read.tampered and read.assertion == {"key": "k"}
    assert first.describe()["algorithm"] == "ES256" and "aleaart local signer" in first.describe()["signer"]


def test_processes_starting_together_all_sign_as_one(tmp_path):
    made: list[Credentials] = []
    threads = [threading.Thread(target=lambda: made.append(Credentials.from_settings(Settings(cache_dir=tmp_path))))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == 4 and len({c.certificates for c in made}) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCAL_FOLDER]  # no staging folder left behind


def test_a_trusted_root_makes_its_signer_trusted(tmp_path):
    Credentials.from_settings(Settings(cache_dir=tmp_path))
    root = tmp_path / LOCAL_FOLDER / ROOT_FILE
    credentials = Credentials.from_settings(Settings(cache_dir=tmp_path, c2pa_trust_anchors=root))
    read = credentials.read(credentials.sign(png(), "image/png", CLAIM))
    assert read.state == "Trusted" and read.failures == ()


def given_identity(tmp_path, key) -> Settings:
    """A certificate chain issued by a root of the test's own, for ``key``."""
    now = datetime.datetime.now(datetime.UTC)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _certificate(_name("test root"), _name("test root"), root_key.public_key(), root_key, now, ca=True)
    leaf = _certificate(_name("test signer"), root.subject, key.public_key(), root_key, now, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "chain.pem").write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return Settings(cache_dir=tmp_path, c2pa_cert=tmp_path / "chain.pem", c2pa_key=tmp_path / "key.pem")


@pytest.mark.parametrize(("key", "algorithm"), [(ec.generate_private_key(ec.SECP384R1()), "ES384"),
                                                 (ed25519.Ed25519PrivateKey.generate(), "ED25519"),
                                                 (rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                                  "PS256")], ids=["p384", "ed25519", "rsa"])
def test_a_given_certificate_signs_with_its_keys_algorithm(tmp_path, key, algorithm):
    credentials = Credentials.from_settings(given_identity(tmp_path, key))
    assert not credentials.local and credentials.describe()["algorithm"] == algorithm
    assert credentials.read(credentials.sign(png(), "image/png", CLAIM)).state == "Valid"
    assert not (tmp_path / LOCAL_FOLDER).exists()


def test_bad_signing_settings_stop_the_start_saying_what_to_set(tmp_path):
    settings = given_identity(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(InvalidParams, match="ALEAART_C2PA_CERT and ALEAART_C2PA_KEY go together"):
        Credentials.from_settings(settings.model_copy(update={"c2pa_key": None}))
    with pytest.raises(InvalidParams, match="ALEAART_C2PA_KEY=.*cannot be read"):
        Credentials.from_settings(settings.model_copy(update={"c2pa_key": tmp_path / "missing.pem"}))
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "other.pem").write_bytes(other)  # not the certificate's key
    with pytest.raises(ModelUnavailable, match="cannot sign"):
        Credentials.from_settings(settings.model_copy(update={"c2pa_key": tmp_path / "other.pem"}))


def test_a_file_never_signed_or_not_readable_says_so():
    assert read_credentials(png(), "image/png").state == "unsigned"
    garbage = read_credentials(b"not an image at all", "image/png")
    assert garbage.state == "unreadable" and garbage.error


def test_the_manifest_holds_the_aleaart_assertion_under_its_label(tmp_path):
    credentials = Credentials.from_settings(Settings(cache_dir=tmp_path))
    manifest = credentials.read(credentials.sign(png(), "image/png", CLAIM)).manifest
    assert [a["label"] for a in manifest["assertions"]][-1] == LABEL


def test_a_scheduler_config_with_infinities_still_signs():
    """DPMSolverMultistepScheduler's lambda_min_clipped is -inf; the SDK reads strict JSON only."""
    from aleaart.provenance.claim import render_assertion

    assertion = render_assertion(key="k", kind="render", spec={}, params=None, token_id=None, chain=None,
                                 recipe={"model": "m"}, size=(16, 16), pixels=None,
                                 details={"schedulerConfig": {"lambda_min_clipped": float("-inf"), "eta": 1.0}})
    credentials = Credentials.from_settings(Settings())
    signed = credentials.sign(png(), "image/png", Claim(title="t.png", action="c2pa.created", software_agent="aleaart",
                                                         assertion=assertion))
    ours = next(a for a in credentials.read(signed).manifest["assertions"] if a["label"] == LABEL)
    assert ours["data"]["recipe"]["schedulerConfig"] == {"lambda_min_clipped": "-inf", "eta": 1.0}
