"""The Jittor networks against diffusers/transformers on tiny random models (max abs diff 1e-4)."""

import importlib.util

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.jittor,
    pytest.mark.skipif(importlib.util.find_spec("jittor") is None, reason="jittor is not installed"),
]

TOL = 1e-4


@pytest.fixture(scope="module")
def jt():
    from jstyleid.engines.jittor import import_jittor

    jittor = import_jittor()
    with jittor.no_grad():
        yield jittor


def _randomize(model, seed):
    """Perturb every weight, so norms' affine parameters and biases are tested too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _save(model, tmp_path_factory, name):
    folder = tmp_path_factory.mktemp(name)
    model.save_pretrained(folder)
    return folder


def _max_diff(jittor_out, torch_out):
    return float(np.abs(jittor_out.numpy() - torch_out.detach().numpy()).max())


def tiny_unet(**overrides):
    from diffusers import UNet2DConditionModel

    config = {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        "block_out_channels": (32, 32, 64, 64),
        "layers_per_block": 2,
        "attention_head_dim": (2, 2, 4, 4),
        "norm_num_groups": 8,
        "cross_attention_dim": 32,
        "use_linear_projection": True,
        "upcast_attention": True,
    }
    torch.manual_seed(0)
    return _randomize(UNet2DConditionModel(**{**config, **overrides}), seed=1)


@pytest.fixture(scope="module")
def sd21_unet(tmp_path_factory):
    """A tiny UNet with SD 2.1's block structure (linear projections, upcast attention)."""
    model = tiny_unet()
    return model, _save(model, tmp_path_factory, "unet")


def _unet_inputs(batch=2, size=8, tokens=7):
    gen = torch.Generator().manual_seed(2)
    sample = torch.randn(batch, 4, size, size, generator=gen)
    context = torch.randn(batch, tokens, 32, generator=gen)
    return sample, context


def test_unet_matches_diffusers(jt, sd21_unet):
    from jstyleid.engines.jittor.unet import UNet2DConditionModel

    torch_model, folder = sd21_unet
    model = UNet2DConditionModel.from_pretrained(folder)
    sample, context = _unet_inputs()
    with torch.no_grad():
        expected = torch_model(sample, 981, context).sample
    out = model(jt.array(sample.numpy()), 981, jt.array(context.numpy()))
    assert tuple(out.shape) == tuple(expected.shape)
    assert _max_diff(out, expected) < TOL


def test_unet_conv_projection_odd_size_per_sample_timesteps(jt, tmp_path_factory):
    """SD 1.x-style conv projections, one head count for all blocks, another act_fn, a size
    that is no multiple of 8 (upsampling to the skip sizes) and one timestep per sample."""
    from jstyleid.engines.jittor.unet import UNet2DConditionModel

    torch_model = tiny_unet(use_linear_projection=False, upcast_attention=False, attention_head_dim=2, act_fn="gelu")
    model = UNet2DConditionModel.from_pretrained(_save(torch_model, tmp_path_factory, "unet_conv"))
    sample, context = _unet_inputs(size=10)
    timesteps = torch.tensor([10, 500])
    with torch.no_grad():
        expected = torch_model(sample, timesteps, context).sample
    out = model(jt.array(sample.numpy()), jt.array(timesteps.numpy()), jt.array(context.numpy()))
    assert _max_diff(out, expected) < TOL


def test_attention_names_match_diffusers(jt, sd21_unet):
    from jstyleid.engines.jittor.attention import attention_modules
    from jstyleid.engines.jittor.unet import UNet2DConditionModel

    torch_model, folder = sd21_unet
    model = UNet2DConditionModel.from_pretrained(folder)
    expected = {name.removesuffix(".processor") for name in torch_model.attn_processors}
    modules = attention_modules(model)
    assert set(modules) == expected
    assert all(module.name == name for name, module in modules.items())


class TorchInjection:
    """Records q/k/v on the first call; later calls attend with the recorded k/v."""

    def __init__(self):
        self.recorded = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        if self.recorded is None:
            self.recorded = (q, k, v)
        else:
            k, v = self.recorded[1:]
        b, n, inner = q.shape

        def heads(x):
            return x.view(b, -1, attn.heads, inner // attn.heads).transpose(1, 2)

        out = torch.nn.functional.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        return attn.to_out[0](out.transpose(1, 2).reshape(b, n, inner))


class JittorInjection:
    """The same through the Jittor seam: set_processors and attention()."""

    def __init__(self):
        self.recorded = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None):
        from jstyleid.engines.jittor.attention import attention

        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        if self.recorded is None:
            self.recorded = (q, k, v)
        else:
            k, v = self.recorded[1:]
        return attn.to_out[0](attention(q, k, v, attn.heads, attn.scale))


def test_processor_seam_records_and_injects_qkv(jt, sd21_unet):
    from jstyleid.engines.jittor.attention import set_processors
    from jstyleid.engines.jittor.unet import UNet2DConditionModel

    torch_model, folder = sd21_unet
    model = UNet2DConditionModel.from_pretrained(folder)
    layers = [
        "up_blocks.2.attentions.0.transformer_blocks.0.attn1",
        "up_blocks.3.attentions.2.transformer_blocks.0.attn1",
    ]
    torch_procs = {name: TorchInjection() for name in layers}
    jittor_procs = {name: JittorInjection() for name in layers}
    default = torch_model.attn_processors
    torch_model.set_attn_processor({**default, **{f"{name}.processor": p for name, p in torch_procs.items()}})
    set_processors(model, jittor_procs)

    style, context = _unet_inputs()
    content = torch.randn(style.shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch_model(style, 200, context)  # records
        expected = torch_model(content, 200, context).sample  # injects the style's k/v
    model(jt.array(style.numpy()), 200, jt.array(context.numpy()))
    out = model(jt.array(content.numpy()), 200, jt.array(context.numpy()))

    for name in layers:
        for mine, theirs in zip(jittor_procs[name].recorded, torch_procs[name].recorded):
            assert tuple(mine.shape) == tuple(theirs.shape)  # (batch, tokens, inner_dim)
            assert _max_diff(mine, theirs) < TOL
    assert _max_diff(out, expected) < TOL
    with pytest.raises(KeyError):
        set_processors(model, {"up_blocks.9.attn1": JittorInjection()})


def tiny_autoencoder(**overrides):
    from diffusers import AutoencoderKL

    config = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (32, 32, 32, 32),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 32,
    }
    torch.manual_seed(0)
    return _randomize(AutoencoderKL(**{**config, **overrides}), seed=1)


@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory):
    model = tiny_autoencoder()
    return model, _save(model, tmp_path_factory, "vae")


def _check_vae(jt, torch_model, model):
    image = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2)) * 2 - 1
    latent = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected_mean = torch_model.encode(image).latent_dist.mean
        expected_image = torch_model.decode(latent).sample
    mean = model.encode(jt.array(image.numpy()))
    decoded = model.decode(jt.array(latent.numpy()))
    assert tuple(mean.shape) == tuple(expected_mean.shape)
    assert tuple(decoded.shape) == tuple(expected_image.shape)
    assert _max_diff(mean, expected_mean) < TOL
    assert _max_diff(decoded, expected_image) < TOL


def test_vae_encode_decode_match_diffusers(jt, tiny_vae):
    from jstyleid.engines.jittor.vae import AutoencoderKL

    torch_model, folder = tiny_vae
    _check_vae(jt, torch_model, AutoencoderKL.from_pretrained(folder))


def test_vae_without_mid_block_attention(jt, tmp_path_factory):
    from jstyleid.engines.jittor.vae import AutoencoderKL

    torch_model = tiny_autoencoder(mid_block_add_attention=False, act_fn="relu")
    _check_vae(jt, torch_model, AutoencoderKL.from_pretrained(_save(torch_model, tmp_path_factory, "vae_no_attn")))


def test_vae_loads_legacy_attention_names(jt, tiny_vae, tmp_path):
    """Checkpoints from before diffusers 0.14 call the mid-block attention query/key/value/proj_attn."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from jstyleid.engines.jittor.vae import AutoencoderKL

    _, folder = tiny_vae
    legacy = {"to_q.": "query.", "to_k.": "key.", "to_v.": "value.", "to_out.0.": "proj_attn."}
    state = {}
    for key, value in load_file(folder / "diffusion_pytorch_model.safetensors").items():
        for new, old in legacy.items():
            key = key.replace(f"attentions.0.{new}", f"attentions.0.{old}")
        state[key] = value
    assert "encoder.mid_block.attentions.0.query.weight" in state
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    save_file(state, tmp_path / "diffusion_pytorch_model.safetensors")

    reference = AutoencoderKL.from_pretrained(folder).state_dict()
    loaded = AutoencoderKL.from_pretrained(tmp_path).state_dict()
    assert all(np.array_equal(loaded[key].numpy(), reference[key].numpy()) for key in reference)


def test_load_rejects_mismatched_weights(jt, tiny_vae, tmp_path):
    from safetensors.numpy import load_file, save_file

    from jstyleid.engines.jittor.vae import AutoencoderKL
    from jstyleid.engines.jittor.weights import load_weights, read_config

    _, folder = tiny_vae
    model = AutoencoderKL(read_config(folder))
    state = load_file(folder / "diffusion_pytorch_model.safetensors")
    state["extra.weight"] = np.zeros(3, dtype=np.float32)
    del state["decoder.conv_out.bias"]
    save_file(state, tmp_path / "broken.safetensors")
    with pytest.raises(
        ValueError, match=r"1 missing keys \['decoder.conv_out.bias'\], 1 unexpected keys \['extra.weight'\]"
    ):
        load_weights(model, tmp_path / "broken.safetensors")


def tiny_clip(hidden_act):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        hidden_act=hidden_act,
        vocab_size=1000,
        max_position_embeddings=77,
    )
    torch.manual_seed(0)
    return _randomize(CLIPTextModel(config), seed=1)


@pytest.mark.parametrize("hidden_act", ["gelu", "quick_gelu"])
def test_clip_text_encoder_matches_transformers(jt, tmp_path_factory, hidden_act):
    from jstyleid.engines.jittor.clip import CLIPTextModel

    torch_model = tiny_clip(hidden_act)
    model = CLIPTextModel.from_pretrained(_save(torch_model, tmp_path_factory, f"clip_{hidden_act}"))
    input_ids = torch.randint(0, 1000, (2, 77), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = torch_model(input_ids).last_hidden_state
    out = model(input_ids.numpy())
    assert _max_diff(out, expected) < TOL


def test_clip_loads_prefixed_keys(jt, tmp_path_factory, tmp_path):
    """Stable Diffusion's text encoders were saved by transformers 4: keys under ``text_model.``
    and a position_ids buffer."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from jstyleid.engines.jittor.clip import CLIPTextModel

    folder = _save(tiny_clip("gelu"), tmp_path_factory, "clip_prefixed")
    state = {f"text_model.{key}": value for key, value in load_file(folder / "model.safetensors").items()}
    state["text_model.embeddings.position_ids"] = np.arange(77, dtype=np.int64)[None]
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    save_file(state, tmp_path / "model.safetensors")

    reference = CLIPTextModel.from_pretrained(folder).state_dict()
    loaded = CLIPTextModel.from_pretrained(tmp_path).state_dict()
    assert all(np.array_equal(loaded[key].numpy(), reference[key].numpy()) for key in reference)


def test_a_killed_child_process_does_not_end_a_process_that_imported_jittor():
    """Jittor's core quick-exits a process one of whose children dies of a signal (its SIGCHLD handler)
    and turns Ctrl-C into a quick exit; import_jittor gives both back to Python."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import signal, subprocess, sys, time\n"
            "from jstyleid.engines.jittor import import_jittor\n"
            "import_jittor()\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "child.kill(); child.wait(); time.sleep(0.5)\n"
            "print('alive', signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=root)
    assert done.returncode == 0 and done.stdout.splitlines()[-1:] == ["alive True"], done.stderr[-2000:]
