"""LoRA on the torch engine's U-Net (and text encoder): loading a saved LoRA, and the trainer behind `jstyleid train-lora`.

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
from .base import TEXT_ENCODER_PREFIX, lora_file

ADAPTER = "default"
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")  # diffusers' train_dreambooth_lora.py


def load_lora(unet, text_encoder, path) -> None:
    """Apply a diffusers-format SD LoRA (a .safetensors file, or a folder holding LORA_FILE) to `unet`, and
    its `text_encoder.` part, if any, to `text_encoder`: what StableDiffusionPipeline.load_lora_weights loads."""
    from diffusers import StableDiffusionPipeline
    from safetensors import SafetensorError

    file = lora_file(path)
    try:  # the pipeline's class methods also convert other common LoRA formats (kohya, A1111)
        state_dict, alphas, metadata = StableDiffusionPipeline.lora_state_dict(
            str(file.parent), weight_name=file.name, local_files_only=True, return_lora_metadata=True)
        StableDiffusionPipeline.load_lora_into_unet(state_dict, alphas, unet, metadata=metadata)
        if any(key.startswith(TEXT_ENCODER_PREFIX) for key in state_dict):
            StableDiffusionPipeline.load_lora_into_text_encoder(state_dict, alphas, text_encoder, metadata=metadata)
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as err:
        # RuntimeError: shapes that do not fit this U-Net (a LoRA of another model); keep it to one line
        raise InputError(file, f"cannot load LoRA weights ({' '.join(str(err).split())[:300]})") from None


def _diffusers_key(param_name: str) -> str:
    return param_name.replace(f".lora_A.{ADAPTER}.", ".lora.down.").replace(f".lora_B.{ADAPTER}.", ".lora.up.")


def dreambooth_loss(pred, target, prior_weight: float | None = None):
    """MSE; with prior preservation the batch is [instances, class images] and the loss is
    instance MSE + prior_weight * class MSE, as diffusers' train_dreambooth_lora.py chunks it."""
    if prior_weight is None:
        return F.mse_loss(pred, target)
    pred, pred_prior = torch.chunk(pred, 2, dim=0)
    target, target_prior = torch.chunk(target, 2, dim=0)
    return F.mse_loss(pred, target) + prior_weight * F.mse_loss(pred_prior, target_prior)


def _add_lora(model, config, prefix: str = "") -> dict:
    """peft LoRA layers in `model` (frozen otherwise), kept in fp32; returns them by diffusers key."""
    from peft import inject_adapter_in_model

    model.requires_grad_(False)
    if prefix:  # the text encoder: transformers' add_adapter wants a newer peft than diffusers' pin
        inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    else:
        model.add_adapter(config, adapter_name=ADAPTER)
    params = {}
    for name, p in model.named_parameters():
        if p.requires_grad:  # LoRA weights stay fp32 even on an fp16 network (as diffusers' cast_training_params)
            p.data = p.data.float()
            # the U-Net under diffusers' LoRA names, the text encoder under peft's (as diffusers' script saves it)
            params[prefix + (name.replace(f".{ADAPTER}.", ".") if prefix else _diffusers_key(name))] = p
    return params


class TorchLoraTrainer:
    """DreamBooth-LoRA optimisation of a TorchEngine's U-Net (and optionally its text encoder; the VAE stays frozen).

    One optimiser step: backward() once per batch it accumulates (each loss times `scale`), then update().
    """

    def __init__(self, engine, *, rank: int = 4, alpha: float | None = None,
                 targets=("to_q", "to_k", "to_v", "to_out.0"), lr: float = 1e-4, betas=(0.9, 0.999),
                 weight_decay: float = 1e-2, eps: float = 1e-8, max_grad_norm: float = 1.0, text_encoder=None):
        from peft import LoraConfig

        self.engine, self.max_grad_norm = engine, max_grad_norm
        self.params = _add_lora(engine.unet_model, LoraConfig(
            r=rank, lora_alpha=rank if alpha is None else alpha, init_lora_weights="gaussian",
            target_modules=list(targets)))
        groups = [dict(params=list(self.params.values()), lr=lr)]
        self.train_text_encoder = text_encoder is not None
        if self.train_text_encoder:
            text_params = _add_lora(engine.text_encoder, LoraConfig(
                r=text_encoder.rank, lora_alpha=text_encoder.rank, init_lora_weights="gaussian",
                target_modules=list(TEXT_ENCODER_TARGETS)), TEXT_ENCODER_PREFIX)
            groups.append(dict(params=list(text_params.values()), lr=text_encoder.lr))
            self.params.update(text_params)
        self.base_lrs = [group["lr"] for group in groups]
        # fused: one kernel for all LoRA tensors; a batch-1 step is launch-bound on a GPU.
        self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps,
                                           fused=engine.device.type == "cuda")
        self.autocast = engine.device.type == "cuda" and engine.dtype != torch.float32
        # fp16 gradients through the frozen fp16 U-Net can underflow: scale the loss, as mixed precision does.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast and engine.dtype == torch.float16)
        self._embeddings = {}
        self._losses = []  # of the batches accumulated since the last update

    @torch.no_grad()
    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, H, W) in [-1, 1] -> mean and std of the VAE's latent distribution, times scaling_factor."""
        engine = self.engine
        dist = engine.vae.encode(engine.tensor(images)).latent_dist
        return engine.numpy(dist.mean) * engine.scaling_factor, engine.numpy(dist.std) * engine.scaling_factor

    def condition(self, texts):
        """Text embeddings of one prompt per batch item: through the training text encoder (with
        gradients) when it has LoRA layers, else the frozen embeddings, computed once per prompt."""
        if self.train_text_encoder:
            return self.engine.text_encoder(self.engine.token_ids(texts))[0]
        for text in set(texts) - self._embeddings.keys():
            self._embeddings[text] = self.engine.text([text])
        if len(set(texts)) == 1:
            return self._embeddings[texts[0]]  # (1, ...): broadcast over the batch
        return torch.cat([self._embeddings[text] for text in texts])

    def backward(self, noisy: np.ndarray, timesteps: np.ndarray, target: np.ndarray, cond,
                 prior_weight: float | None = None, scale: float = 1.0) -> None:
        """Accumulate the gradients of scale * dreambooth_loss(unet(x_t, t, cond), target) for update()."""
        engine, unet = self.engine, self.engine.unet_model
        if not self._losses:
            self.optimizer.zero_grad(set_to_none=True)
        x = torch.as_tensor(noisy).to(engine.device, engine.dtype)
        t = torch.as_tensor(np.asarray(timesteps, dtype=np.int64), device=engine.device)
        target = torch.as_tensor(target, device=engine.device, dtype=torch.float32)
        cond = cond.expand(x.shape[0], -1, -1) if cond.shape[0] == 1 else cond
        with torch.autocast(engine.device.type, dtype=engine.dtype, enabled=self.autocast):
            pred = unet(x, t, encoder_hidden_states=cond).sample
        loss = dreambooth_loss(pred.float(), target, prior_weight)
        self.scaler.scale(loss * scale if scale != 1 else loss).backward()
        self._losses.append(float(loss.detach()))

    def update(self, lr_factor: float = 1.0) -> float:
        """One AdamW step on the accumulated gradients (clipped together), at lr_factor times each base lr;
        returns the mean loss of the accumulated batches (before the update)."""
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * lr_factor
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params.values(), self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        losses, self._losses = self._losses, []
        return sum(losses) / len(losses)

    def step(self, noisy: np.ndarray, timesteps: np.ndarray, target: np.ndarray, cond) -> float:
        """One optimiser step on MSE(unet(x_t, t, cond), target); returns the loss before the update."""
        self.backward(noisy, timesteps, target, cond)
        return self.update()

    def lora_state_dict(self) -> dict[str, np.ndarray]:
        """The LoRA weights as float32 arrays (not scaled by alpha / rank); copies, not views of the live weights."""
        return {key: p.detach().float().cpu().numpy().copy() for key, p in self.params.items()}

    @torch.no_grad()
    def load_lora_state_dict(self, state_dict: dict[str, np.ndarray]) -> None:
        """Set the LoRA weights (e.g. seeded initial values drawn by dreambooth.py)."""
        if set(state_dict) != set(self.params):
            raise KeyError(f"LoRA keys differ: {sorted(set(state_dict) ^ set(self.params))[:3]} ...")
        for key, p in self.params.items():
            p.copy_(torch.as_tensor(state_dict[key]))

    def training_state(self) -> dict[str, np.ndarray]:
        """LoRA weights, AdamW's moments and step counts, the loss scaler: all a resumed run needs."""
        state = {f"lora/{key}": value for key, value in self.lora_state_dict().items()}
        for index, moments in self.optimizer.state_dict()["state"].items():
            state.update({f"optimizer/{index}/{name}": value.detach().cpu().numpy() for name, value in moments.items()})
        if self.scaler.is_enabled():
            state.update({f"scaler/{name}": np.asarray(value) for name, value in self.scaler.state_dict().items()})
        return state

    def load_training_state(self, state: dict[str, np.ndarray]) -> None:
        self.load_lora_state_dict({key[5:]: value for key, value in state.items() if key.startswith("lora/")})
        saved = self.optimizer.state_dict()
        saved["state"] = {}
        for key, value in state.items():
            if key.startswith("optimizer/"):
                _, index, name = key.split("/")
                saved["state"].setdefault(int(index), {})[name] = torch.from_numpy(value)
        self.optimizer.load_state_dict(saved)
        scaler = {key[7:]: value.item() for key, value in state.items() if key.startswith("scaler/")}
        if scaler:
            self.scaler.load_state_dict(scaler)

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients of the last step (after clipping), for comparing engines."""
        return {key: p.grad.detach().float().cpu().numpy() for key, p in self.params.items() if p.grad is not None}
