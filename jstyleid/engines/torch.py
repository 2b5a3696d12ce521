"""The PyTorch engine: diffusers/transformers networks, attention processors as the StyleID seam."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F

from .devices import resolve_device, resolve_dtype
from ..errors import InputError
from .models import fingerprint, read_config, resolve_model
from ..core.schedule import NoiseSchedule
from .base import INJECTED_LAYERS, CallState, Engine, StyleIDAttnProcessor

log = logging.getLogger(__name__)


def attention(q, k, v, heads: int, scale: float, upcast: bool):
    """softmax(scale * q k^T) v per head, on (B, tokens, inner_dim) tensors; fp32 when `upcast`."""
    batch, n_q, inner = q.shape
    head_dim = inner // heads

    def split(t):
        return t.reshape(t.shape[0], t.shape[1], heads, head_dim).transpose(1, 2)

    dtype = q.dtype
    q, k, v = (split(t.float() if upcast else t) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)
    return out.transpose(1, 2).reshape(batch, n_q, inner).to(dtype)


class TorchEngine(Engine):
    name = "torch"

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", lora: str | None = None,
                 layers=INJECTED_LAYERS):
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        folder = resolve_model(model)
        self.dtype = getattr(torch, resolve_dtype(dtype, device))
        self.schedule = NoiseSchedule.from_scheduler_config(read_config(folder, "scheduler"))
        self.fingerprint = fingerprint(folder)
        load = dict(torch_dtype=self.dtype)
        self.unet_model = UNet2DConditionModel.from_pretrained(folder / "unet", **load).eval()
        self.vae = AutoencoderKL.from_pretrained(folder / "vae", **load).eval()
        self.text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", **load).eval()
        self.tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        self.unet_config = dict(self.unet_model.config)
        self.scaling_factor = float(self.vae.config.scaling_factor)
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.model_folder = folder
        if lora:
            self.load_lora(lora)
        self._state = CallState()
        self.use_layers(layers)
        # Weights are read into host memory before the GPU is claimed (devices.py): another job can
        # compute meanwhile, and this job holds the GPU only from here on.
        self.to(resolve_device(device))
        log.info("torch engine: %s on %s (%s), fingerprint %s", folder, self.device, self.dtype, self.fingerprint)

    def to(self, device) -> TorchEngine:
        self.device = torch.device(device)
        for network in (self.unet_model, self.vae, self.text_encoder):
            network.to(self.device)
        return self

    def use_layers(self, layers) -> None:
        """Inject into `layers` from now on, the weights staying loaded (one inject job runs every sweep setting)."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        names = {name.removesuffix(".processor"): name for name in self.unet_model.attn_processors}
        unknown = set(layers) - set(names)
        if unknown:
            raise InputError("--layers", f"the U-Net has no attention layer {sorted(unknown)[0]}")
        self.unet_model.set_attn_processor({
            name: StyleIDAttnProcessor(layer, self._state, self) if layer in layers else AttnProcessor2_0()
            for layer, name in names.items()})
        self.injected_layers = tuple(layers)

    def load_lora(self, path: str) -> None:
        """Apply a LoRA saved by train-lora (or any diffusers SD LoRA) to the U-Net and the text encoder."""
        from .torch_lora import load_lora

        load_lora(self.unet_model, self.text_encoder, path)
        self.lora_files += (path,)

    # -- tensors ----------------------------------------------------------------------------
    def tensor(self, array):
        return torch.as_tensor(np.asarray(array)).to(self.device, self.dtype)

    def numpy(self, tensor, dtype="float32"):
        return tensor.detach().to(getattr(torch, dtype)).cpu().numpy()

    def cat(self, tensors):
        return torch.cat(list(tensors))

    def expand_batch(self, tensor, n):
        return tensor.expand(n, *tensor.shape[1:])

    attention = staticmethod(attention)

    # -- networks ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images):
        x = self.tensor(images)
        return self.vae.encode(x).latent_dist.mean * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents):
        y = self.vae.decode(latents / self.scaling_factor).sample.float().clamp(-1, 1)
        return torch.round((y + 1) * 127.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    def token_ids(self, prompts):
        return self.tokenizer(list(prompts), padding="max_length", max_length=self.tokenizer.model_max_length,
                              truncation=True, return_tensors="pt").input_ids.to(self.device)

    @torch.no_grad()
    def text(self, prompts):
        return self.text_encoder(self.token_ids(prompts))[0]

    @torch.no_grad()
    def unet(self, x, t, cond, record=(), inject=None):
        cond = self.expand_batch(cond, x.shape[0]) if cond.shape[0] == 1 else cond
        with self._state.active(record, inject) as recorded:
            out = self.unet_model(x, t, encoder_hidden_states=cond).sample
        return out, recorded

    def lora_trainer(self, **settings):
        from .torch_lora import TorchLoraTrainer

        return TorchLoraTrainer(self, **settings)
