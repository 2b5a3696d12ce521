"""StyleID knobs: layer presets name real self-attention layers; rotate gives prompt i reference i mod R."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jstyleid.cli import main
from jstyleid.engines import load_engine
from jstyleid.engines.base import INJECTED_LAYERS
from jstyleid.pipelines.inject import reference_groups
from jstyleid.core.layers import PRESETS, decoder_layer, layers_label, resolve_layers

RES, STEPS = 64, 3


@pytest.mark.parametrize("preset", ["tiny", "sd21"])
def test_presets_name_self_attention_layers_of_the_unet(preset):
    from jstyleid.engines.presets import build_unet

    with torch.device("meta"):  # the structure only: no weights allocated
        unet = build_unet(preset)
    modules = dict(unet.named_modules())
    for name, layers in PRESETS.items():
        for layer in layers:
            assert layer in modules, f"{name}: {layer}"
            assert not modules[layer].is_cross_attention, f"{name}: {layer} is a cross-attention"
    # The authors' numbering (get_unet_layers): layer n = up_blocks[n // 3].attentions[n % 3].
    assert modules[decoder_layer(7)] is unet.up_blocks[2].attentions[1].transformer_blocks[0].attn1
    assert modules[decoder_layer(11)] is unet.up_blocks[3].attentions[2].transformer_blocks[0].attn1


def test_preset_contents_and_labels():
    assert PRESETS["spec6"] == INJECTED_LAYERS == tuple(decoder_layer(n) for n in range(6, 12))
    assert PRESETS["sd21_7to11"] == INJECTED_LAYERS[1:]
    assert resolve_layers("sd21_7to11") == INJECTED_LAYERS[1:]
    assert resolve_layers(["spec6", decoder_layer(3)]) == INJECTED_LAYERS + (decoder_layer(3),)
    assert layers_label(list(INJECTED_LAYERS)) == "spec6"
    assert layers_label([decoder_layer(9), decoder_layer(4)]) == "L9-4"
    odd = ["mid_block.attentions.0.transformer_blocks.0.attn1"]
    assert layers_label(odd).startswith("L") and layers_label(odd) == layers_label(odd) != layers_label(["x"])
    with pytest.raises(ValueError):
        decoder_layer(2)  # up_blocks.0 has no attention


def test_engine_takes_a_preset_and_refuses_an_unknown_layer(tiny_model):
    engine = load_engine("torch", str(tiny_model), device="cpu", dtype="float32", layers="sd21_7to11")
    assert engine.injected_layers == INJECTED_LAYERS[1:]
    from jstyleid.errors import InputError

    with pytest.raises(InputError, match="no attention layer up_blocks.9"):
        load_engine("torch", str(tiny_model), device="cpu", dtype="float32",
                    layers=["up_blocks.9.attentions.0.transformer_blocks.0.attn1"])


@pytest.mark.parametrize("n_contents, n_refs", [(5, 2), (3, 3), (2, 4), (4, 1)])
def test_rotate_gives_prompt_i_reference_i_mod_r(n_contents, n_refs):
    groups = reference_groups(n_contents, n_refs, "rotate")
    taken = {i: styles for contents, styles in groups for i in contents}
    assert taken == {i: [i % n_refs] for i in range(n_contents)}
    assert reference_groups(n_contents, n_refs, "pool") == [(list(range(n_contents)), list(range(n_refs)))]


def test_rotate_through_the_cli_equals_one_reference_each(tiny_model, images, tmp_path):
    """inject --refs-mode rotate, 3 contents and 2 references: content i equals its injection with reference i mod 2 alone."""
    from jstyleid.storage.cache import open_caches
    from jstyleid.pipelines.inject import inject_images
    from jstyleid.pipelines.invert import invert_images

    engine = load_engine("torch", str(tiny_model), device="cpu", dtype="float32", layers="sd21_7to11")
    cc = [tmp_path / f"c{i}.h5" for i in range(3)]
    sc = [tmp_path / f"s{j}.h5" for j in range(2)]
    invert_images(engine, [images["c0"], images["c1"], images["s1"]], cc, role="content", steps=STEPS, resolution=RES)
    invert_images(engine, [images["s0"], images["c1"]], sc, role="style", steps=STEPS, resolution=RES)
    rotated = [tmp_path / f"rot{i}.npy" for i in range(3)]
    assert main(["inject", "--model", str(tiny_model), "--device", "cpu", "--dtype", "float32", "--layers", "sd21_7to11",
                 "--content-caches", *map(str, cc), "--style-caches", *map(str, sc), "--refs-mode", "rotate",
                 "--out", *(str(p.with_suffix(".png")) for p in rotated), "--latent-out", *map(str, rotated)]) == 0

    def alone(contents, styles, tag):
        outs = [tmp_path / f"{tag}{i}.npy" for i in range(len(contents))]
        inject_images(engine, open_caches(contents, "content"), open_caches(styles, "style"),
                [p.with_suffix(".png") for p in outs], outs, gamma=0.75, temperature=1.5, use_adain=True,
                mode="stored", batch_size=4)
        return [np.load(p) for p in outs]

    for i in range(3):
        np.testing.assert_allclose(np.load(rotated[i]), alone([cc[i]], [sc[i % 2]], f"alone{i}_")[0], atol=1e-5)
    pooled = alone(cc[:1], sc, "pool")
    assert np.abs(np.load(rotated[0]) - pooled[0]).max() > 1e-3  # one reference is not the pool of two
