"""LoRA on the Jittor engine's U-Net: loading a saved LoRA, and the trainer of `train-lora --engine jittor`.

Mirrors jstyleid/engines/torch_lora.py: the trainer only runs networks and the optimiser, every random
draw comes from dreambooth.py as host arrays. A LoRA layer computes what peft's does,
base(x) + up(down(x)) * alpha / rank, and its parameters carry diffusers' key names
("<module>.lora.down.weight" = peft's lora_A, "<module>.lora.up.weight" = lora_B).
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..base import lora_file
from . import import_jittor

jt = import_jittor()
from jittor import nn


class LoraLinear(nn.Module):
    """A Linear layer plus a low-rank update; keeps the base layer's weight and bias names."""

    def __init__(self, base: nn.Linear, rank: int, scale: float):
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.scale = scale
        # peft's "gaussian" init: the update starts at zero
        down, up = nn.Linear(self.in_features, rank, bias=False), nn.Linear(rank, self.out_features, bias=False)
        down.weight = jt.randn(down.weight.shape) / rank
        up.weight = jt.zeros(up.weight.shape)
        self.lora = nn.Sequential(collections.OrderedDict([("down", down), ("up", up)]))

    def execute(self, x):
        return nn.linear(x, self.weight, self.bias) + self.lora(x) * self.scale


def _matches(name: str, targets) -> bool:
    """peft's rule for target_modules: the module path is a target or ends with "." + a target."""
    return any(name == t or name.endswith("." + t) for t in targets)


def add_lora(model, targets, rank: int, scale: float) -> dict[str, jt.Var]:
    """Wrap every Linear of `model` that `targets` name in a LoraLinear; returns the LoRA parameters by key."""
    params = {}
    for name, module in list(model.named_modules()):
        if not name or not _matches(name, targets):
            continue
        if not isinstance(module, nn.Linear):
            raise InputError("--targets", f"{name} is a {type(module).__name__}; LoRA needs Linear layers")
        parent_name, _, child = name.rpartition(".")
        parent = model
        for part in filter(None, parent_name.split(".")):
            parent = getattr(parent, part)
        layer = LoraLinear(module, rank, scale)
        setattr(parent, child, layer)  # nn.Sequential maps a digit attribute to its item ("to_out.0")
        params[f"{name}.lora.down.weight"] = layer.lora.down.weight
        params[f"{name}.lora.up.weight"] = layer.lora.up.weight
    if not params:
        raise InputError("--targets", f"no U-Net module matches {list(targets)}")
    return params


def _read_lora_file(path) -> tuple[Path, dict[str, np.ndarray]]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    file = lora_file(path)
    try:
        return file, load_file(str(file))
    except (OSError, SafetensorError) as err:
        raise InputError(file, f"cannot load LoRA weights ({err})") from None


def load_unet_lora(unet, path) -> None:
    """Apply a diffusers-format SD LoRA (a .safetensors file, or a folder holding LORA_FILE) to `unet`.

    Reads "unet.<module>.lora.{down,up}.weight" (train-lora's files: alpha / rank already folded into
    the up weights) or peft's "lora_A"/"lora_B" names, with an optional "<module>.alpha" (scale
    alpha / rank, as diffusers' network alphas). A file with a text-encoder LoRA is refused.
    """
    file, state = _read_lora_file(path)
    layers: dict[str, dict[str, np.ndarray]] = collections.defaultdict(dict)
    for key, value in state.items():
        if key.startswith(("text_encoder.", "text_encoder_2.")):
            raise InputError(file, "holds a text-encoder LoRA (lora_text_encoder), which the Jittor engine "
                                   "cannot apply; use the torch engine")
        key = key.removeprefix("unet.")
        for suffix, part in ((".lora.down.weight", "down"), (".lora_A.weight", "down"),
                             (".lora.up.weight", "up"), (".lora_B.weight", "up"), (".alpha", "alpha")):
            if key.endswith(suffix):
                layers[key[:-len(suffix)]][part] = value
                break
        else:
            raise InputError(file, f"cannot load LoRA weights (unknown key {key!r}; expected diffusers' "
                                   "<module>.lora.down.weight / .lora.up.weight)")
    if not layers:
        raise InputError(file, "cannot load LoRA weights (no U-Net LoRA in the file)")
    modules = dict(unet.named_modules())
    for name, parts in sorted(layers.items()):
        if "down" not in parts or "up" not in parts or not isinstance(modules.get(name), nn.Linear):
            raise InputError(file, f"cannot load LoRA weights ({name} is no Linear layer of the U-Net "
                                   "or lacks its down/up pair)")
        down, up = parts["down"], parts["up"]
        rank = down.shape[0]
        scale = float(parts["alpha"]) / rank if "alpha" in parts else 1.0
        params = add_lora(unet, [name], rank, scale)
        for key, value in ((f"{name}.lora.down.weight", down), (f"{name}.lora.up.weight", up)):
            if tuple(params[key].shape) != value.shape:
                raise InputError(file, f"cannot load LoRA weights ({key}: shape {value.shape}, "
                                       f"the U-Net needs {tuple(params[key].shape)})")
            params[key].assign(jt.array(np.asarray(value, dtype=np.float32)))


class JittorLoraTrainer:
    """DreamBooth-LoRA optimisation of a JittorEngine's U-Net (the text encoder and VAE stay frozen), in float32.

    jittor.optim.AdamW is torch's decoupled AdamW: p <- p (1 - lr wd), then the bias-corrected Adam
    step lr / (1 - b1^n) * m / (sqrt(v) / sqrt(1 - b2^n) + eps); its clip_grad_norm scales all
    gradients by min(1, max_norm / (total_norm + 1e-6)), as torch.nn.utils.clip_grad_norm_.
    Learning-rate schedules and checkpoints work as on the torch engine. Refused: a text-encoder LoRA,
    prior preservation, and gradient accumulation (Jittor's AdamW counts every backward() as a step n
    of its bias correction).
    """

    def __init__(self, engine, *, rank: int = 4, alpha: float | None = None,
                 targets=("to_q", "to_k", "to_v", "to_out.0"), lr: float = 1e-4, betas=(0.9, 0.999),
                 weight_decay: float = 1e-2, eps: float = 1e-8, max_grad_norm: float = 1.0, text_encoder=None):
        if text_encoder is not None:
            raise InputError("lora_text_encoder", "the Jittor engine cannot train a text-encoder LoRA; "
                                                  "use the torch engine")
        self.engine, self.max_grad_norm, self.base_lr = engine, max_grad_norm, lr
        unet = engine.unet_model
        for p in unet.parameters():
            p.stop_grad()
        self.params = add_lora(unet, targets, rank, (rank if alpha is None else alpha) / rank)
        self.optimizer = jt.optim.AdamW(list(self.params.values()), lr=lr, betas=tuple(betas),
                                        weight_decay=weight_decay, eps=eps)
        self._embeddings = {}
        self._loss = None

    @jt.no_grad()
    def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, H, W) in [-1, 1] -> mean and std of the VAE's latent distribution, times scaling_factor."""
        engine = self.engine
        mean, std = engine.vae.latent_distribution(engine.tensor(images))
        return engine.numpy(mean) * engine.scaling_factor, engine.numpy(std) * engine.scaling_factor

    def condition(self, texts):
        """The frozen text embeddings of the batch's prompts: one for the batch when they are the same,
        else one per sample (a LoRA shared by styles: each image its own style's prompt)."""
        for text in dict.fromkeys(texts):
            if text not in self._embeddings:
                self._embeddings[text] = self.engine.text([text])
        if len(set(texts)) == 1:
            return self._embeddings[texts[0]]
        return jt.concat([self._embeddings[text] for text in texts], dim=0)

    def backward(self, noisy: np.ndarray, timesteps: np.ndarray, target: np.ndarray, cond,
                 prior_weight: float | None = None, scale: float = 1.0) -> None:
        """The gradients of MSE(unet(x_t, t, cond), target) for the next update()."""
        if prior_weight is not None:
            raise InputError("class_prompt", "the Jittor engine has no prior preservation; use the torch engine")
        if scale != 1 or self._loss is not None:
            raise InputError("gradient_accumulation_steps", "the Jittor engine cannot accumulate gradients; "
                                                            "use 1 or the torch engine")
        engine = self.engine
        x = engine.tensor(noisy)
        t = jt.array(np.asarray(timesteps, dtype=np.int32))
        target = engine.tensor(target)
        cond = self.engine.expand_batch(cond, x.shape[0]) if cond.shape[0] == 1 else cond
        pred = engine.unet_model(x, t, cond)
        self._loss = ((pred - target) ** 2).mean()
        self.optimizer.backward(self._loss)

    def update(self, lr_factor: float = 1.0) -> float:
        """One AdamW step at lr_factor times the base lr; returns the loss before the update."""
        self.optimizer.lr = self.base_lr * lr_factor
        self.optimizer.clip_grad_norm(self.max_grad_norm)
        self.optimizer.step()
        # The graph holds the weights as they were, so this is the loss before the update.
        loss, self._loss = self._loss, None
        jt.sync([loss] + list(self.params.values()))
        return float(loss.item())

    def step(self, noisy: np.ndarray, timesteps: np.ndarray, target: np.ndarray, cond) -> float:
        """One optimiser step on MSE(unet(x_t, t, cond), target); returns the loss before the update."""
        self.backward(noisy, timesteps, target, cond)
        return self.update()

    def lora_state_dict(self) -> dict[str, np.ndarray]:
        """The LoRA weights as float32 arrays (not scaled by alpha / rank)."""
        return {key: p.numpy().astype(np.float32) for key, p in self.params.items()}

    def load_lora_state_dict(self, state_dict: dict[str, np.ndarray]) -> None:
        """Set the LoRA weights (e.g. seeded initial values drawn by dreambooth.py)."""
        if set(state_dict) != set(self.params):
            raise KeyError(f"LoRA keys differ: {sorted(set(state_dict) ^ set(self.params))[:3]} ...")
        for key, p in self.params.items():
            p.assign(jt.array(np.asarray(state_dict[key], dtype=np.float32)))

    def training_state(self) -> dict[str, np.ndarray]:
        """LoRA weights, AdamW's moments (m, and v in "values") and its step count n."""
        [group] = self.optimizer.param_groups
        state = {f"lora/{key}": value for key, value in self.lora_state_dict().items()}
        for name in ("m", "values"):
            state.update({f"optimizer/{name}/{key}": v.numpy() for key, v in zip(self.params, group[name])})
        state["optimizer/n_step"] = np.asarray(self.optimizer.n_step)
        return state

    def load_training_state(self, state: dict[str, np.ndarray]) -> None:
        self.load_lora_state_dict({key[5:]: value for key, value in state.items() if key.startswith("lora/")})
        [group] = self.optimizer.param_groups
        for name in ("m", "values"):
            for key, v in zip(self.params, group[name]):
                v.assign(jt.array(state[f"optimizer/{name}/{key}"]))
        self.optimizer.n_step = int(state["optimizer/n_step"])

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients of the last step (after clipping), for comparing engines."""
        [group] = self.optimizer.param_groups
        if "grads" not in group:  # no step yet
            return {}
        return {key: g.numpy().astype(np.float32) for key, g in zip(self.params, group["grads"])}
