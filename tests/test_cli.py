import json
import subprocess
import sys

from PIL import Image

from aleaart.metadata import read_png_text

PARAMS = {"promptIndex": 1, "styleIndex": 8, "samplerIndex": 4, "aspectIndex": 4, "steps": 18, "cfg": 75,
          "latentSeed": 0, "paletteId": 5}


def aleaart(*args, env, cwd):
    return subprocess.run([sys.executable, "-m", "aleaart.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_generate_prints_the_result_and_writes_a_tagged_png(tiny_env, tmp_path):
    result = aleaart("generate", "--params", json.dumps(PARAMS), "--token-id", "7", env=tiny_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["prompt"].startswith("cyberpunk cityscape") and out["prompt"].endswith("tall, 3:4 | max detail | 8k")
    assert out["parameters"] == {"steps": 18, "cfg_scale": 7.5, "seed": 0, "sampler": "DPM++ SDE",
                                 "width": 512, "height": 683}
    assert out["tokenId"] == "7" and out["seconds"] > 0
    path = tmp_path / out["file"]
    assert path.name == f"art_token_7_{out['key'][:16]}.png"
    with Image.open(path) as image:
        assert image.size == (512, 683)
    texts = read_png_text(path.read_bytes())
    assert texts["parameters"].splitlines()[1].startswith("Steps: 18, Sampler: DPM++ SDE, CFG scale: 7.5, Seed: 0")
    assert json.loads(texts["aleaart"])["renderParams"] == PARAMS
    assert "denoising" in result.stderr  # the progress bar goes to stderr, not into the JSON


def test_generate_from_a_params_file_to_a_chosen_path(tiny_env, tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({**PARAMS, "aspectIndex": 0, "samplerIndex": 2}))
    result = aleaart("generate", "--params", "@p.json", "--out", "out/x.png", env=tiny_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tokenId"] is None
    assert Image.open(tmp_path / "out" / "x.png").size == (512, 512)


def test_bad_input_exits_2_with_one_line(tiny_env, tmp_path):
    for params, message in [
        ({**PARAMS, "steps": 70}, "steps must be 18..64, got 70"),
        ({**PARAMS, "cfg": "75"}, "cfg must be an integer 70..180, got '75'"),
        ({"promptIndex": 1}, "parameters are missing styleIndex"),
    ]:
        result = aleaart("generate", "--params", json.dumps(params), env=tiny_env, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"aleaart: error: {message}")
    result = aleaart("generate", "--params", "{oops", env=tiny_env, cwd=tmp_path)
    assert result.returncode == 2 and "not valid JSON" in result.stderr
    result = aleaart("generate", "--params", json.dumps(PARAMS), "--token-id", "a b", env=tiny_env, cwd=tmp_path)
    assert result.returncode == 2 and "tokenId must be" in result.stderr


def test_missing_model_exits_1_with_the_hint(tiny_env, tmp_path):
    env = {**tiny_env, "ALEAART_MODEL": str(tmp_path / "missing-folder")}
    result = aleaart("generate", "--params", json.dumps(PARAMS), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("aleaart: error: model ")
    assert "ALEAART_MODEL=tiny" in result.stderr and "Traceback" not in result.stderr


def test_make_tiny_model_with_single_file_and_a_lora(tiny_env, tmp_path):
    from aleaart.weights import read_layout, what_it_is

    result = aleaart("make-tiny-model", "m", "--single-file", "m.safetensors", "--lora", "l.safetensors",
                     env=tiny_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (tmp_path / "m" / "model_index.json").exists()
    assert out["singleFile"].endswith("m.safetensors") and (tmp_path / "m.safetensors").stat().st_size > 1e6
    assert out["lora"].endswith("l.safetensors") and what_it_is(read_layout(tmp_path / "l.safetensors")) == "a LoRA"


def test_bad_configuration_exits_2_naming_the_variable(tiny_env, tmp_path):
    result = aleaart("generate", "--params", json.dumps(PARAMS), env={**tiny_env, "ALEAART_THREADS": "0"},
                     cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aleaart: error: bad configuration: ALEAART_THREADS: Input should be greater than or equal to 1"]


def test_variations_writes_one_png_each_naming_their_source(tiny_env, tmp_path):
    small = {**PARAMS, "samplerIndex": 0, "aspectIndex": 0}
    result = aleaart("variations", "--params", json.dumps(small), "--token-id", "7", "--count", "2",
                     "--strength", "0.4", "--out", "near", env=tiny_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["files"]) == 2 and out["strength"] == 0.4
    chunks = [json.loads(read_png_text((tmp_path / f).read_bytes())["aleaart"]) for f in out["files"]]
    assert [c["operation"]["seed"] for c in chunks] == [1, 2] and {c["source"] for c in chunks} == {out["source"]}
    refused = aleaart("variations", "--params", json.dumps(small), "--strength", "2", env=tiny_env, cwd=tmp_path)
    assert refused.returncode == 2 and "strength must be 0..1" in refused.stderr


def test_upscale_and_restyle_a_png_the_cli_wrote(tiny_env, tmp_path):
    small = {**PARAMS, "samplerIndex": 0, "aspectIndex": 0}
    made = aleaart("generate", "--params", json.dumps(small), "--token-id", "7", "--out", "src.png",
                   env=tiny_env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    source_key = json.loads(made.stdout)["key"]

    up = aleaart("upscale", "src.png", "--mode", "lanczos", "--scale", "3", "--out", "big.png", env=tiny_env,
                 cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    out = json.loads(up.stdout)
    assert out["source"] == source_key and out["settings"] == {"scale": 3, "mode": "lanczos"}
    with Image.open(tmp_path / "big.png") as image:
        assert image.size == (1536, 1536)

    restyled = aleaart("restyle", "src.png", "--style", "9", "--strength", "0.3", env=tiny_env, cwd=tmp_path)
    assert restyled.returncode == 0, restyled.stderr
    out = json.loads(restyled.stdout)
    chunk = json.loads(read_png_text((tmp_path / out["file"]).read_bytes())["aleaart"])
    assert chunk["kind"] == "restyle" and chunk["source"] == source_key and "oil painting" in chunk["spec"]["prompt"]
    assert "denoising" in restyled.stderr

    for args, message in [(("upscale", "src.png", "--scale", "3"), "scale must be 2 with mode hires"),
                          (("restyle", "src.png", "--style", "12"), "styleIndex must be 0..9"),
                          (("restyle", "missing.png", "--style", "1"), "cannot read missing.png")]:
        refused = aleaart(*args, env=tiny_env, cwd=tmp_path)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
