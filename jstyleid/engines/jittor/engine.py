"""The Jittor engine: this package's networks, attention processors as the StyleID seam.

Mirrors jstyleid/engines/torch.py step for step, so the two engines give the same numbers
(tests/test_jittor_engine.py) and share inversion caches (same model fingerprint).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ...errors import InputError
from ...models import fingerprint, read_config, resolve_model
from ...schedule import NoiseSchedule
from ..base import INJECTED_LAYERS, Engine, Injection
from . import import_jittor
from .attention import attention, attention_modules, set_processors

jt = import_jittor()
log = logging.getLogger(__name__)


class _CallState:
    """What the StyleID processors read during the current U-Net call."""

    def __init__(self):
        self.record: Sequence[str] = ()
        self.inject: Injection | None = None
        self.recorded: dict[str, dict[str, jt.Var]] = {}


def expand_batch(t, n: int):
    """(1, ...) -> (n, ...) without copying, as torch's expand (one cond, or one style's k, v, for n rows)."""
    return t.broadcast((n,) + tuple(t.shape[1:]))


class StyleIDAttnProcessor:
    """Self-attention of an injected layer: records q/k/v and applies the spec's injection."""

    def __init__(self, name: str, state: _CallState):
        self.name, self.state = name, state

    def __call__(self, attn, hidden_states, encoder_hidden_states=None):
        h = hidden_states
        q, k, v = attn.to_q(h), attn.to_k(h), attn.to_v(h)
        state = self.state
        if state.record:
            state.recorded[self.name] = {n: t for n, t in zip("qkv", (q, k, v)) if n in state.record}
        inj, upcast = state.inject, attn.upcast_attention
        if inj is None:
            out = attention(q, k, v, attn.heads, attn.scale, upcast=upcast)
        else:
            n = inj.rows
            if inj.features is not None:
                q_content, k_style, v_style = inj.features[self.name]
            else:  # recompute: rows n..2n-1 are the contents, 2n.. the style references
                q_content = q[n:2 * n]
                k_style = k[2 * n:].reshape((1, -1, k.shape[-1]))
                v_style = v[2 * n:].reshape((1, -1, v.shape[-1]))
            # q~ = gamma * q_content + (1 - gamma) * q;  attention = softmax(T q~ k^T / sqrt(d)) v
            q_tilde = inj.gamma * q_content + (1 - inj.gamma) * q[:n]
            stylized = attention(q_tilde, expand_batch(k_style, n), expand_batch(v_style, n),
                                 attn.heads, inj.temperature * attn.scale, upcast=upcast)
            rest = attention(q[n:], k[n:], v[n:], attn.heads, attn.scale, upcast=upcast) if h.shape[0] > n else None
            out = stylized if rest is None else jt.concat([stylized, rest])
        out = attn.to_out[0](out)  # diffusers' to_out.1 is a dropout
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def _use_device(device: str) -> str:
    """Switch Jittor to `device` ("auto", "cpu", "cuda" or "cuda:0") and return "cpu" or "cuda".

    Jittor has one CUDA device, the first visible one: choose it with CUDA_VISIBLE_DEVICES.
    """
    if device == "auto":
        device = "cuda" if jt.has_cuda else "cpu"
    if device == "cpu":
        jt.flags.use_cuda = 0
        return "cpu"
    if device not in ("cuda", "cuda:0"):
        raise InputError("--device", f"{device!r}: the jittor engine runs on cpu or cuda "
                                     "(pick the GPU with CUDA_VISIBLE_DEVICES)")
    if not jt.has_cuda:
        raise InputError("--device", "Jittor found no usable CUDA (it needs a CUDA driver and a CUDA 12.x or "
                                     "older toolkit; see the README, \"Jittor engine\")")
    jt.flags.use_cuda = 1
    return "cuda"


class JittorEngine(Engine):
    name = "jittor"

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", lora: str | None = None,
                 layers=INJECTED_LAYERS):
        from transformers import CLIPTokenizer

        from .clip import CLIPTextModel
        from .unet import UNet2DConditionModel
        from .vae import AutoencoderKL

        folder = resolve_model(model)
        self.device = _use_device(device)
        if dtype not in ("auto", "float32"):
            raise InputError("--dtype", f"{dtype}: the jittor engine computes in float32")
        self.dtype = "float32"
        self.schedule = NoiseSchedule.from_scheduler_config(read_config(folder, "scheduler"))
        self.fingerprint = fingerprint(folder)
        self.unet_model = UNet2DConditionModel.from_pretrained(folder / "unet")
        self.vae = AutoencoderKL.from_pretrained(folder / "vae")
        self.text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder")
        self.tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        self.unet_config = dict(self.unet_model.config)
        self.scaling_factor = float(self.vae.config["scaling_factor"])
        self.vae_scale_factor = 2 ** (len(self.vae.config["block_out_channels"]) - 1)
        self.model_folder = folder
        self.injected_layers = tuple(layers)
        if lora:
            self.load_lora(lora)
        self._state = _CallState()
        unknown = set(self.injected_layers) - set(attention_modules(self.unet_model))
        if unknown:
            raise InputError("--layers", f"the U-Net has no attention layer {sorted(unknown)[0]}")
        # Every other attention layer keeps its standard processor.
        set_processors(self.unet_model, {layer: StyleIDAttnProcessor(layer, self._state)
                                         for layer in self.injected_layers})
        log.info("jittor engine: %s on %s (%s), fingerprint %s", folder, self.device, self.dtype, self.fingerprint)

    def load_lora(self, path: str) -> None:
        """Apply a LoRA saved by train-lora (diffusers' key names) to the U-Net."""
        from .lora import load_unet_lora

        load_unet_lora(self.unet_model, path)

    # -- tensors ----------------------------------------------------------------------------
    def tensor(self, array):
        return jt.array(np.asarray(array, dtype=np.float32))

    def numpy(self, tensor):
        return tensor.numpy().astype(np.float32, copy=False)

    def cat(self, tensors):
        return jt.concat(list(tensors))

    # -- networks ---------------------------------------------------------------------------
    @jt.no_grad()
    def encode(self, images):
        x = self.tensor(images)
        return self.vae.encode(x) * self.scaling_factor

    @jt.no_grad()
    def decode(self, latents):
        y = self.vae.decode(latents / self.scaling_factor).numpy().clip(-1, 1)
        # rounded on the host: jt.round rounds halves away from zero, torch.round to even
        return np.round((y + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)

    @jt.no_grad()
    def text(self, prompts):
        ids = self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="np").input_ids
        return self.text_encoder(ids)

    @jt.no_grad()
    def unet(self, x, t, cond, record=(), inject=None):
        state = self._state
        state.record, state.inject, state.recorded = tuple(record), inject, {}
        try:
            cond = expand_batch(cond, x.shape[0]) if cond.shape[0] == 1 else cond
            out = self.unet_model(x, t, cond)
            # Run this call now: Jittor is lazy, and a sampling loop would otherwise grow one graph.
            jt.sync([out] + [v for named in state.recorded.values() for v in named.values()])
            return out, state.recorded
        finally:
            state.record, state.inject, state.recorded = (), None, {}

    def lora_trainer(self, **settings):
        from .lora import JittorLoraTrainer

        return JittorLoraTrainer(self, **settings)
