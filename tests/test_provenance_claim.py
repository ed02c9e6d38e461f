"""What a stored file's Content Credentials say (pure): actions, the aleaart assertion, the recipe class."""

from __future__ import annotations

import hashlib

from PIL import Image

from aleaart.provenance.claim import (
    DIGITAL_SOURCE_TYPE,
    LABEL,
    XMP,
    Claim,
    Parent,
    pixel_hash,
    recipe_class,
    render_assertion,
)

RECIPE = {"model": "tiny-v1", "device": "cpu", "dtype": "float32", "aleaart": "0.1.0", "diffusers": "0.42.1",
          "torch": "2.13.0", "backend": "openvino-2026.4.1-bf16"}


def test_the_pixel_hash_is_the_sha256_of_the_rgb_bytes_whatever_the_mode():
    image = Image.new("RGB", (4, 3), (10, 20, 30))
    assert pixel_hash(image) == hashlib.sha256(bytes([10, 20, 30]) * 12).hexdigest()
    assert pixel_hash(image.convert("RGBA")) == pixel_hash(image)


def test_the_recipe_class_names_weights_device_precision_backend_and_versions():
    assert recipe_class(RECIPE) == "tiny-v1/cpu/float32/openvino-2026.4.1-bf16/torch-2.13.0/diffusers-0.42.1"
    eager = {k: v for k, v in RECIPE.items() if k != "backend"}
    assert recipe_class(eager).split("/")[3] == "torch"  # PyTorch eager has no backend entry in its recipe


def test_a_render_is_created_by_trained_algorithmic_media_with_the_aleaart_assertion():
    assertion = render_assertion(key="k" * 64, kind="render", spec={"seed": 1}, params={"latentSeed": 1},
                                 token_id="7", chain={"chainId": 1, "contract": "0xc"}, recipe=RECIPE,
                                 details={"threads": 2}, pixels="p" * 64, size=(512, 512))
    claim = Claim(title="a.png", action="c2pa.created", software_agent="aleaart 0.1.0 (tiny)", assertion=assertion)
    manifest = claim.manifest()
    actions = manifest["assertions"][0]["data"]["actions"]
    assert actions == [{"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE,
                        "softwareAgent": {"name": "aleaart 0.1.0 (tiny)"}}]
    data = manifest["assertions"][1]
    assert data["label"] == LABEL and data["data"]["chain"] == {"chainId": 1, "contract": "0xc"}
    assert data["data"]["recipe"]["threads"] == 2 and data["data"]["pixels"]["width"] == 512
    assert claim.ingredient() is None


def test_a_manual_request_states_no_chain():
    assertion = render_assertion(key="k", kind="render", spec={}, params=None, token_id="label",
                                 chain={"chainId": 1, "contract": "0xc"}, recipe=RECIPE, details={}, pixels=None,
                                 size=(1, 1))
    assert assertion["chain"] is None and assertion["pixels"] is None


def test_a_derived_file_opens_its_parent_then_says_what_it_did():
    claim = Claim(title="b.png", action="c2pa.resized", software_agent="aleaart", assertion={},
                  parent=Parent("s" * 64, b"png"))
    opened, resized = claim.actions()
    assert opened == {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}}
    assert resized["action"] == "c2pa.resized" and resized["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert claim.ingredient()["relationship"] == "parentOf"
    assert claim.ingredient()["instance_id"] == "aleaart:key:" + "s" * 64


def test_the_xmp_packet_marks_the_iptc_digital_source_type():
    assert f"<Iptc4xmpExt:DigitalSourceType>{DIGITAL_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>" in XMP
