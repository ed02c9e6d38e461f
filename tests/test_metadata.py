import json

from PIL import Image

from aleaart.metadata import ImageInfo, encode_png, image_filename, read_png_text, render_key
from aleaart.params import PaletteChoice, RenderParams, spec_from_params

PARAMS = RenderParams(0, 0, 0, 0, 20, 75, 12345, 5)
SPEC = spec_from_params(PARAMS)
RECIPE = {"model": "m@1", "device": "cpu", "dtype": "float32"}


def test_a1111_parameters_text():
    info = ImageInfo(spec=SPEC, model="sd15", version="0.1.0", token_id="1")
    prompt, line = info.parameters_text().split("\n")
    assert prompt == SPEC.prompt
    assert line == (
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 12345, Size: 512x512, "
        "Model: sd15, Version: aleaart 0.1.0, Token: 1"
    )


def test_png_chunks_read_back_with_pixels_unchanged():
    image = Image.new("RGB", (16, 8), (10, 20, 30))
    info = ImageInfo(spec=SPEC, model="sd15", version="0.1.0", token_id="42")
    data = encode_png(image, info)
    texts = read_png_text(data)
    assert texts["parameters"] == info.parameters_text()
    stored = json.loads(texts["aleaart"])
    assert stored["tokenId"] == "42"
    assert stored["renderParams"] == PARAMS.to_json()
    assert stored["spec"]["prompt"] == SPEC.prompt
    assert encode_png(image, info) == data  # same input, same bytes


def test_render_key_tracks_everything_that_shapes_the_file():
    base = render_key(SPEC, RECIPE, "1")
    assert base == render_key(spec_from_params(RenderParams(0, 0, 0, 0, 20, 75, 12345, 5)), dict(RECIPE), "1")
    assert base != render_key(spec_from_params(RenderParams(0, 0, 0, 0, 20, 75, 12346, 5)), RECIPE, "1")
    assert base != render_key(SPEC, {**RECIPE, "model": "m@2"}, "1")
    assert base != render_key(SPEC, RECIPE, "2")
    assert base != render_key(SPEC, RECIPE, None)
    assert len(base) == 64


def test_image_filename_in_the_seed_style():
    assert image_filename("1", "abcdef0123456789ffff") == "art_token_1_abcdef0123456789.png"
    assert image_filename(None, "abcdef0123456789ffff") == "art_token_manual_abcdef0123456789.png"


def test_token_metadata_for_marketplaces():
    from aleaart.cid import file_cid
    from aleaart.metadata import FileIds, token_metadata

    params = RenderParams(1, 8, 2, 1, 33, 75, 99, 23)
    png = b"\x89PNG fake bytes"
    spec = spec_from_params(params, PaletteChoice("prompt"))
    meta = token_metadata(token_id="7", params=params, spec=spec, image_url="http://h/tokens/7/image.png",
                          model="sd15", stored=FileIds.of(png))
    assert meta["name"] == "AleaArt #7" and meta["image"] == "http://h/tokens/7/image.png"
    assert meta["image_ipfs"] == "ipfs://" + file_cid(png)
    traits = {a["trait_type"]: a for a in meta["attributes"]}
    assert {k: traits[k]["value"] for k in ("Prompt", "Style", "Sampler", "Aspect", "Palette")} == {
        "Prompt": "Cyberpunk", "Style": "Watercolor", "Sampler": "Euler a", "Aspect": "Landscape 1024x576",
        "Palette": "Aurora"}
    assert all("display_type" not in traits[k] for k in ("Prompt", "Style", "Sampler", "Aspect", "Palette"))
    assert [(traits[k]["value"], traits[k]["display_type"]) for k in ("Steps", "CFG", "Latent Seed")] == [
        (33, "number"), (7.5, "number"), (99, "number")]
    assert meta["generation"]["seed"] == 99 and meta["generation"]["model"] == "sd15"
    assert meta["generation"]["prompt"] == spec.prompt and "aurora green colour palette" in spec.prompt
    assert len(meta["generation"]["sha256"]) == 64
    unrendered = token_metadata(token_id="7", params=params, spec=spec, image_url="u", model=None, stored=None)
    assert "image_ipfs" not in unrendered and unrendered["generation"]["sha256"] is None
