import pytest

from aleaart.errors import InvalidParams
from aleaart.params import (
    ASPECTS,
    FIELDS,
    SAMPLERS,
    STYLES,
    TEMPLATES,
    RenderParams,
    build_prompt,
    describe,
    restyle_prompt,
    spec_from_params,
)

VALID = {
    "promptIndex": 0,
    "styleIndex": 0,
    "samplerIndex": 0,
    "aspectIndex": 0,
    "steps": 20,
    "cfg": 75,
    "latentSeed": 12345,
    "paletteId": 5,
}

# The tables exactly as issue #2 states them.
EXPECTED_TEMPLATES = [
    ("Retrofuturism", "retrofuturism bodywear, primitive, vintage, intricate detail, digital art, digital painting, concept art, poster, award winning"),  # noqa: E501
    ("Cyberpunk", "cyberpunk cityscape, neon lights, futuristic architecture, digital art, concept art, detailed"),
    ("Fantasy", "fantasy landscape, magical forest, ethereal lighting, digital painting, concept art, detailed"),
    ("Steampunk", "steampunk machinery, brass and copper, Victorian era, intricate detail, digital art"),
    ("Space", "space exploration, cosmic landscapes, nebula, digital art, concept art, detailed"),
    ("Underwater", "underwater world, marine life, bioluminescent, digital painting, concept art"),
    ("Medieval", "medieval fantasy, castle, dragons, magical atmosphere, digital art, detailed"),
    ("Post-Apocalyptic", "post-apocalyptic wasteland, ruins, desolate landscape, digital art, concept art"),
    ("Alien", "alien planet, exotic flora and fauna, otherworldly, digital painting, detailed"),
    ("Ancient", "ancient civilization, pyramids, desert, mystical atmosphere, digital art"),
    ("Arctic", "arctic wilderness, aurora borealis, ice formations, digital painting, concept art"),
    ("Tropical", "tropical paradise, lush vegetation, crystal clear water, digital art, detailed"),
]
EXPECTED_STYLES = [
    ("Ultra Realistic", "max detail, 8k, ultra realistic"),
    ("Painterly", "artistic, painterly, brush strokes"),
    ("Minimalist", "minimalist, clean, simple"),
    ("Baroque", "baroque, ornate, decorative"),
    ("Impressionist", "impressionist, soft, dreamy"),
    ("Expressionist", "expressionist, bold, dramatic"),
    ("Surreal", "surreal, abstract, dreamlike"),
    ("Photorealistic", "photorealistic, detailed, sharp"),
    ("Watercolor", "watercolor, soft, flowing"),
    ("Oil Painting", "oil painting, rich, textured"),
]
EXPECTED_ASPECTS = [
    ("Square", 512, 512, "square, 1:1"),
    ("Landscape", 1024, 576, "landscape, 16:9"),
    ("Portrait", 768, 1024, "portrait, 9:16"),
    ("Wide", 1024, 448, "wide, 21:9"),
    ("Tall", 512, 683, "tall, 3:4"),
]
EXPECTED_SAMPLERS = ["DPM++ 2M Karras", "DPM++ SDE Karras", "Euler a", "DPM++ 2M", "DPM++ SDE", "LMS"]


def params(**changes) -> RenderParams:
    return RenderParams.from_json({**VALID, **changes})


def test_seed_example_prompt_to_the_character():
    assert build_prompt(params()) == (
        "retrofuturism bodywear, primitive, vintage, intricate detail, digital art, digital painting, "
        "concept art, poster, award winning, max detail, 8k, ultra realistic, square, 1:1 | max detail | 8k"
    )


@pytest.mark.parametrize("index", range(12))
def test_every_template(index):
    name, text = EXPECTED_TEMPLATES[index]
    p = params(promptIndex=index)
    assert (p.template.name, p.template.text) == (name, text)
    assert build_prompt(p).startswith(text + ", max detail, 8k, ultra realistic, ")


@pytest.mark.parametrize("index", range(10))
def test_every_style(index):
    name, text = EXPECTED_STYLES[index]
    p = params(styleIndex=index)
    assert (p.style.name, p.style.text) == (name, text)
    assert f", {text}, square, 1:1 | max detail | 8k" in build_prompt(p)


@pytest.mark.parametrize("index", range(5))
def test_every_aspect(index):
    name, width, height, words = EXPECTED_ASPECTS[index]
    spec = spec_from_params(params(aspectIndex=index))
    assert (spec.width, spec.height) == (width, height)
    assert spec.prompt.endswith(f", {words} | max detail | 8k")
    assert spec.render_width % 8 == 0 and spec.render_height % 8 == 0
    assert 0 <= spec.render_width - width < 8 and 0 <= spec.render_height - height < 8
    assert describe(params(aspectIndex=index))["aspect"] == f"{name} {width}x{height}"


def test_tall_renders_at_next_multiple_of_8():
    spec = spec_from_params(params(aspectIndex=4))
    assert (spec.render_width, spec.render_height) == (512, 688)


@pytest.mark.parametrize("index", range(6))
def test_every_sampler(index):
    assert spec_from_params(params(samplerIndex=index)).sampler == EXPECTED_SAMPLERS[index]


def test_table_sizes_match_field_ranges():
    assert (len(TEMPLATES), len(STYLES), len(SAMPLERS), len(ASPECTS)) == (12, 10, 6, 5)
    assert [f.key for f in FIELDS] == list(VALID)


def test_steps_guidance_seed_map_through():
    spec = spec_from_params(params(steps=33, cfg=75, latentSeed=0))
    assert (spec.steps, spec.guidance_scale, spec.seed) == (33, 7.5, 0)
    assert spec_from_params(params(cfg=180)).guidance_scale == 18.0
    assert spec_from_params(params(cfg=70)).guidance_scale == 7.0


def test_summary_is_the_seed_parameters_object():
    assert spec_from_params(params()).summary() == {
        "steps": 20, "cfg_scale": 7.5, "seed": 12345, "sampler": "DPM++ 2M Karras", "width": 512, "height": 512,
    }


def test_json_round_trip():
    assert params().to_json() == VALID


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.key)
def test_each_field_bounds(field):
    assert getattr(params(**{field.key: field.low}), field.attr) == field.low
    assert getattr(params(**{field.key: field.high}), field.attr) == field.high
    for bad in (field.low - 1, field.high + 1):
        with pytest.raises(InvalidParams) as error:
            params(**{field.key: bad})
        assert str(error.value) == f"{field.key} must be {field.low}..{field.high}, got {bad}"


@pytest.mark.parametrize("bad", ["3", 3.0, 3.5, True, None, [1], float("nan")])
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.key)
def test_each_field_must_be_an_integer(field, bad):
    with pytest.raises(InvalidParams, match=f"^{field.key} must be an integer {field.low}..{field.high}, got "):
        params(**{field.key: bad})


def test_missing_fields_are_named():
    data = dict(VALID)
    del data["cfg"], data["paletteId"]
    with pytest.raises(InvalidParams, match="missing cfg, paletteId"):
        RenderParams.from_json(data)


def test_unknown_keys_and_non_objects_are_rejected():
    with pytest.raises(InvalidParams, match="unknown keys colour"):
        RenderParams.from_json({**VALID, "colour": 1})
    with pytest.raises(InvalidParams, match="must be a JSON object"):
        RenderParams.from_json([1, 2, 3])


def test_latent_seed_full_uint32_range():
    assert params(latentSeed=0).latent_seed == 0
    assert params(latentSeed=2**32 - 1).latent_seed == 4294967295


def test_describe_names():
    assert describe(params(promptIndex=1, styleIndex=8, samplerIndex=2, aspectIndex=1, paletteId=23)) == {
        "prompt": "Cyberpunk", "style": "Watercolor", "sampler": "Euler a", "aspect": "Landscape 1024x576",
        "palette": "Aurora",
    }


def test_pure_modules_and_the_api_need_no_torch():
    import subprocess
    import sys

    code = ("import sys, aleaart.params, aleaart.metadata, aleaart.engine.source, aleaart.api, aleaart.jobs, "
            "aleaart.store; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_restyle_replaces_only_the_style_of_every_seed_prompt():
    for template in range(len(TEMPLATES)):
        for old in range(len(STYLES)):
            prompt = build_prompt(RenderParams.from_json({**VALID, "promptIndex": template, "styleIndex": old}))
            for new in range(len(STYLES)):
                wanted = build_prompt(RenderParams.from_json({**VALID, "promptIndex": template, "styleIndex": new}))
                assert restyle_prompt(prompt, new) == wanted


def test_restyle_adds_the_style_to_a_prompt_without_one_and_checks_the_index():
    assert restyle_prompt("a red fox | max detail", 8) == "a red fox, watercolor, soft, flowing | max detail"
    assert restyle_prompt("a red fox", 2) == "a red fox, minimalist, clean, simple"
    with pytest.raises(InvalidParams, match="styleIndex must be 0..9, got 10"):
        restyle_prompt("a red fox", 10)


def test_the_pure_modules_import_without_numpy_pil_or_torch():
    """params and palettes are pure, and importing the job kinds loads neither torch, PyAV nor web3."""
    import subprocess
    import sys

    code = ("import sys, aleaart.params, aleaart.palettes, aleaart.motion\n"
            "heavy = {'numpy', 'PIL', 'skimage', 'torch'} & set(sys.modules)\n"
            "assert not heavy, heavy\n"
            "import aleaart.jobs\n"
            "assert not {'av', 'torch', 'web3'} & set(sys.modules), {'av', 'torch', 'web3'} & set(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
