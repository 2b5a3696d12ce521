"""make-model presets: SD 2.1's exact structure, deterministic for a seed."""

from __future__ import annotations

import json

import pytest
import torch

from jstyleid.engines.presets import build_unet, make_model


@pytest.mark.parametrize("preset", ["sd21", "sd21-base"])
def test_full_size_unet_has_sd21_parameter_count(preset):
    with torch.device("meta"):  # shapes only: no memory for 866 M weights
        unet = build_unet(preset)
    assert round(sum(p.numel() for p in unet.parameters()) / 1e6, 1) == 865.9
    assert unet.config.upcast_attention is (preset == "sd21")


def test_tiny_preset_structure_and_determinism(tiny_model, tmp_path):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(tiny_model / "unet")
    names = {name for name, _ in unet.named_modules()}
    for block in (2, 3):
        for i in range(3):
            assert f"up_blocks.{block}.attentions.{i}.transformer_blocks.0.attn1" in names
    assert "up_blocks.0.attentions.0" not in names and len(unet.down_blocks) == 4
    assert unet.config.use_linear_projection and unet.config.upcast_attention
    scheduler = json.loads((tiny_model / "scheduler" / "scheduler_config.json").read_text())
    assert (scheduler["beta_schedule"], scheduler["beta_start"], scheduler["beta_end"]) == ("scaled_linear", 0.00085, 0.012)
    assert scheduler["steps_offset"] == 1 and not scheduler["set_alpha_to_one"] and not scheduler["clip_sample"]
    assert scheduler["prediction_type"] == "v_prediction"
    ids = CLIPTokenizer.from_pretrained(tiny_model / "tokenizer")("a ring in style_01").input_ids
    assert ids[0] != ids[1] and len(ids) < 20  # BOS, merged word pieces, EOS
    again = make_model("tiny", tmp_path / "again", seed=0)
    other = make_model("tiny", tmp_path / "other", seed=1)
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert (again / weights).read_bytes() == (tiny_model / weights).read_bytes()
    assert (other / weights).read_bytes() != (tiny_model / weights).read_bytes()
