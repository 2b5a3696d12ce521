"""The Jittor engine: this package's networks, attention processors as the StyleID seam.

Mirrors jstyleid/engines/torch.py step for step, so the two engines give the same numbers
(tests/test_jittor_engine.py) and share inversion caches (same model fingerprint).
"""

from __future__ import annotations

import logging

import numpy as np

from ...errors import InputError
from ..models import fingerprint, read_config, resolve_model
from ...core.schedule import NoiseSchedule
from ..base import INJECTED_LAYERS, CallState, Engine, StyleIDAttnProcessor
from . import import_jittor
from .attention import AttnProcessor, attention, attention_modules, set_processors

jt = import_jittor()
log = logging.getLogger(__name__)


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
        if lora:
            self.load_lora(lora)
        self._state = CallState()
        self.injected_layers = ()
        self.use_layers(layers)
        log.info("jittor engine: %s on %s (%s), fingerprint %s", folder, self.device, self.dtype, self.fingerprint)

    def use_layers(self, layers) -> None:
        """Inject into `layers` from now on, the weights staying loaded (one inject job runs every sweep setting)."""
        unknown = set(layers) - set(attention_modules(self.unet_model))
        if unknown:
            raise InputError("--layers", f"the U-Net has no attention layer {sorted(unknown)[0]}")
        # Every other attention layer has (or gets back) the standard processor.
        restored = {layer: AttnProcessor() for layer in self.injected_layers if layer not in layers}
        set_processors(self.unet_model, restored | {layer: StyleIDAttnProcessor(layer, self._state, self)
                                                    for layer in layers})
        self.injected_layers = tuple(layers)

    def load_lora(self, path: str) -> None:
        """Apply a LoRA saved by train-lora (diffusers' key names) to the U-Net."""
        from .lora import load_unet_lora

        load_unet_lora(self.unet_model, path)
        self.lora_files += (path,)

    # -- tensors ----------------------------------------------------------------------------
    def tensor(self, array):
        return jt.array(np.asarray(array, dtype=np.float32))

    def numpy(self, tensor, dtype="float32"):
        return tensor.numpy().astype(dtype, copy=False)

    def cat(self, tensors):
        return jt.concat(list(tensors))

    def expand_batch(self, tensor, n):
        return tensor.broadcast((n,) + tuple(tensor.shape[1:]))

    @staticmethod
    def attention(q, k, v, heads, scale, upcast):
        return attention(q, k, v, heads, scale, upcast=upcast)

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
        cond = self.expand_batch(cond, x.shape[0]) if cond.shape[0] == 1 else cond
        with self._state.active(record, inject) as recorded:
            out = self.unet_model(x, t, cond)
        # Run this call now: Jittor is lazy, and a sampling loop would otherwise grow one graph.
        jt.sync([out] + [v for named in recorded.values() for v in named.values()])
        return out, recorded

    def lora_trainer(self, **settings):
        from .lora import JittorLoraTrainer

        return JittorLoraTrainer(self, **settings)
