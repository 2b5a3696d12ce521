"""LoRA on the torch engine's U-Net: loading a saved LoRA, and the trainer behind `jstyleid train-lora`.

The trainer only runs networks and the optimiser. Every random draw and the diffusion arithmetic
(x_t and its target) come from dreambooth.py as host arrays, so another engine fed the same arrays
gives the same numbers. State dicts are numpy arrays under diffusers' LoRA key names
("<module>.lora.down.weight" = peft's lora_A, "<module>.lora.up.weight" = lora_B).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .base import lora_file

ADAPTER = "default"


def load_unet_lora(unet, path) -> None:
    """Apply a diffusers-format SD LoRA (a .safetensors file, or a folder holding LORA_FILE) to `unet`."""
    from diffusers import StableDiffusionPipeline
    from safetensors import SafetensorError

    file = lora_file(path)
    try:  # the pipeline's class methods also convert other common LoRA formats (kohya, A1111)
        state_dict, alphas, metadata = StableDiffusionPipeline.lora_state_dict(
            str(file.parent), weight_name=file.name, local_files_only=True, return_lora_metadata=True)
        StableDiffusionPipeline.load_lora_into_unet(state_dict, alphas, unet, metadata=metadata)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        # RuntimeError: shapes that do not fit this U-Net (a LoRA of another model); keep it to one line
        raise InputError(file, f"cannot load LoRA weights ({' '.join(str(err).split())[:300]})") from None


def _diffusers_key(param_name: str) -> str:
    return param_name.replace(f".lora_A.{ADAPTER}.", ".lora.down.").replace(f".lora_B.{ADAPTER}.", ".lora.up.")


class TorchLoraTrainer:
    """DreamBooth-LoRA optimisation of a TorchEngine's U-Net (the text encoder and VAE stay frozen)."""

    def __init__(self, engine, *, rank: int = 4, alpha: float | None = None,
                 targets=("to_q", "to_k", "to_v", "to_out.0"), lr: float = 1e-4, betas=(0.9, 0.999),
                 weight_decay: float = 1e-2, eps: float = 1e-8, max_grad_norm: float = 1.0):
        from peft import LoraConfig

        self.engine, self.max_grad_norm = engine, max_grad_norm
        unet = engine.unet_model
        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank if alpha is None else alpha,
                                    init_lora_weights="gaussian", target_modules=list(targets)),
                         adapter_name=ADAPTER)
        # LoRA weights stay fp32 even on an fp16 U-Net (as diffusers' cast_training_params does).
        self.params = {}
        for name, p in unet.named_parameters():
            if p.requires_grad:
                p.data = p.data.float()
                self.params[_diffusers_key(name)] = p
        # fused: one kernel for all LoRA tensors; a batch-1 step is launch-bound on a GPU.
        self.optimizer = torch.optim.AdamW(self.params.values(), lr=lr, betas=tuple(betas),
                                           weight_decay=weight_decay, eps=eps,
                                           fused=engine.device.type == "cuda")
        self.autocast = engine.device.type == "cuda" and engine.dtype != torch.float32
        # fp16 gradients through the frozen fp16 U-Net can underflow: scale the loss, as mixed precision does.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast and engine.dtype == torch.float16)

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, H, W) in [-1, 1] -> mean and std of the VAE's latent distribution, times scaling_factor."""
        engine = self.engine
        dist = engine.vae.encode(engine.tensor(images)).latent_dist
        return engine.numpy(dist.mean) * engine.scaling_factor, engine.numpy(dist.std) * engine.scaling_factor

    def step(self, noisy: np.ndarray, timesteps: np.ndarray, target: np.ndarray, cond) -> float:
        """One optimiser step on MSE(unet(x_t, t, cond), target); returns the loss before the update."""
        engine, unet = self.engine, self.engine.unet_model
        x = torch.as_tensor(noisy).to(engine.device, engine.dtype)
        t = torch.as_tensor(np.asarray(timesteps, dtype=np.int64), device=engine.device)
        target = torch.as_tensor(target, device=engine.device, dtype=torch.float32)
        cond = cond.expand(x.shape[0], -1, -1) if cond.shape[0] == 1 else cond
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(engine.device.type, dtype=engine.dtype, enabled=self.autocast):
            pred = unet(x, t, encoder_hidden_states=cond).sample
        loss = F.mse_loss(pred.float(), target)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params.values(), self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def lora_state_dict(self) -> dict[str, np.ndarray]:
        """The LoRA weights as float32 arrays (not scaled by alpha / rank)."""
        return {key: p.detach().float().cpu().numpy() for key, p in self.params.items()}

    @torch.no_grad()
    def load_lora_state_dict(self, state_dict: dict[str, np.ndarray]) -> None:
        """Set the LoRA weights (e.g. seeded initial values drawn by dreambooth.py)."""
        if set(state_dict) != set(self.params):
            raise KeyError(f"LoRA keys differ: {sorted(set(state_dict) ^ set(self.params))[:3]} ...")
        for key, p in self.params.items():
            p.copy_(torch.as_tensor(state_dict[key]))

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients of the last step (after clipping), for comparing engines."""
        return {key: p.grad.detach().float().cpu().numpy() for key, p in self.params.items() if p.grad is not None}
