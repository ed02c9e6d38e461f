import json

import torch

from aleaart.engine.tiny import build_tiny_pipeline, build_tokenizer, cached_tiny_model, make_tiny_model


def test_tokenizer_is_the_real_clip_bpe():
    tokenizer = build_tokenizer()
    assert len(tokenizer) == 49408
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.model_max_length) == (49406, 49407, 77)
    # Token ids of openai/clip-vit-large-patch14's tokenizer for the same text.
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_long_prompts_are_truncated_to_77_tokens():
    tokenizer = build_tokenizer()
    ids = tokenizer("cat " * 200, truncation=True, max_length=tokenizer.model_max_length).input_ids
    assert len(ids) == 77 and ids[-1] == 49407


def test_weights_come_from_a_fixed_seed():
    torch.manual_seed(1234)  # global state must not matter
    first = build_tiny_pipeline().unet.state_dict()
    torch.manual_seed(5678)
    second = build_tiny_pipeline().unet.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(5678)
    expected = torch.rand(3)
    torch.manual_seed(5678)
    build_tiny_pipeline()
    assert torch.equal(torch.rand(3), expected)


def test_saved_folder_is_a_diffusers_sd1_pipeline(tmp_path):
    folder = make_tiny_model(tmp_path / "tiny")
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    assert 2 ** (len(vae_config["block_out_channels"]) - 1) == 8  # the real 8x latent downscale
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 32 * 2**20


def test_cached_model_is_built_once(tmp_path):
    first = cached_tiny_model(tmp_path)
    stamp = (first / "model_index.json").stat().st_mtime_ns
    assert cached_tiny_model(tmp_path) == first
    assert (first / "model_index.json").stat().st_mtime_ns == stamp
