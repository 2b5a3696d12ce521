"""`jstyleid train-lora`: DreamBooth LoRA on the U-Net for one style folder (the challenge baseline's recipe).

Engine-agnostic: every random draw (LoRA init, image order, latent sample, diffusion noise, timesteps)
comes from one seeded numpy Generator here, and so does x_t = q(x_t | x_0) with its regression target;
the engine's trainer (engines/torch_lora.py) only runs the U-Net, the backward pass and AdamW.

Speed: the style images are encoded once; each step samples latents = mean + std * noise from the
stored VAE distribution (as the baseline's latent_dist.sample() does, without re-running the encoder).
Images are centre-cropped as everywhere else in jstyleid (the baseline random-crops non-square ones).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .checkpoint import CHECKPOINT_FILE, TrainingInterrupted
from ..engines.base import LORA_FILE, TEXT_ENCODER_PREFIX

DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
ENCODE_BATCH = 4
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
# Schedules whose step-i learning rate does not depend on the total: a run of N steps is then the first N
# steps of a longer one, so a checkpoint (or a snapshot) carries over when the step count grows.
STEP_FREE_SCHEDULERS = ("constant", "constant_with_warmup")
SNAPSHOTS_DIR = "snapshots"
SNAPSHOT_KEY = "snapshot/"  # checkpoint arrays snapshot/<step>/<LoRA key>: the snapshots reached so far
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriorPreservation:
    """DreamBooth's class-prior loss: class images of `prompt` (the base model's), weighted by `weight`."""
    images: list
    prompt: str
    weight: float = 1.0


@dataclass(frozen=True)
class TextEncoderLora:
    """LoRA layers in the text encoder too (q/k/v/out projections, as diffusers' script), own rank and lr."""
    rank: int = 4
    lr: float = 5e-6


def lr_factors(name: str, warmup_steps: int, steps: int) -> list[float]:
    """The learning-rate multiplier of each optimiser step, read off diffusers' get_scheduler (base lr 1)."""
    import torch
    from diffusers.optimization import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=steps)
    factors = []
    for _ in range(steps):
        factors.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return factors


def noisy_and_target(schedule, x0: np.ndarray, noise: np.ndarray, t: np.ndarray):
    """x_t = sqrt(abar) x0 + sqrt(1-abar) eps, and what the U-Net should predict there:
    eps for epsilon models, the velocity v = sqrt(abar) eps - sqrt(1-abar) x0 for v_prediction."""
    a = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    x_t = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
    target = noise if schedule.prediction_type == "epsilon" else np.sqrt(a) * noise - np.sqrt(1 - a) * x0
    return x_t.astype(np.float32), target.astype(np.float32)


def initial_lora(shapes: dict[str, tuple], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """peft's "gaussian" init: down (lora_A) ~ N(0, 1/rank^2), up (lora_B) = 0, so training starts at the base model.
    Keys: diffusers' "<module>.lora.down/up.weight" (U-Net) or peft's "<module>.lora_A/B.weight" (text encoder)."""
    return {key: (rng.standard_normal(shapes[key]) / shapes[key][0]).astype(np.float32)
            if ".lora.down." in key or ".lora_A." in key
            else np.zeros(shapes[key], np.float32) for key in sorted(shapes)}


class ImageBatches:
    """Indices in reshuffled epochs, like a shuffling DataLoader; `order` (the epoch's rest) is its whole state.

    With prior preservation the epoch runs over max(instances, class images) and index i pairs instance
    i mod n with class image i mod m, as diffusers' DreamBoothDataset does."""

    def __init__(self, count: int, batch_size: int, order=()):
        self.count, self.batch_size, self.order = count, batch_size, list(order)

    def next(self, rng: np.random.Generator) -> np.ndarray:
        while len(self.order) < self.batch_size:
            self.order.extend(rng.permutation(self.count).tolist())
        batch = np.array(self.order[:self.batch_size])
        del self.order[:self.batch_size]
        return batch


def save_lora(path, state_dict: dict[str, np.ndarray], scale: float) -> None:
    """Write diffusers LoRA keys (`unet.`, and `text_encoder.` for a text-encoder LoRA); the U-Net's
    alpha / rank is folded into its up weights, so every loader (diffusers' load_lora_weights, which
    assumes alpha = rank without metadata) gets the same model."""
    from safetensors.numpy import save

    from ..storage.fileio import atomic_path

    tensors = {}
    for key, value in state_dict.items():
        if key.startswith(TEXT_ENCODER_PREFIX):
            tensors[key] = np.ascontiguousarray(value, np.float32)
        else:
            tensors[f"unet.{key}"] = np.ascontiguousarray(value * scale if ".lora.up." in key else value, np.float32)
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(tensors, metadata={"format": "pt"}))  # save_file would make it owner-only


def snapshot_file(out_dir, step: int) -> Path:
    """Where the LoRA weights at `step` go (a plain diffusers LoRA file, as the final one)."""
    return Path(out_dir) / SNAPSHOTS_DIR / f"step-{step}" / LORA_FILE


def _split_snapshots(arrays: dict) -> tuple[dict, dict[int, dict]]:
    """A checkpoint's arrays -> (the trainer's state, {step: LoRA state dict} of the snapshots in it)."""
    state, reached = {}, {}
    for key, value in arrays.items():
        if key.startswith(SNAPSHOT_KEY):
            step, name = key[len(SNAPSHOT_KEY):].split("/", 1)
            reached.setdefault(int(step), {})[name] = value
        else:
            state[key] = value
    return state, reached


def _encode(trainer, paths, resolution):
    """Mean and std of the VAE latents of the images, encoded once."""
    from ..storage.inputs import preprocess

    pixels = np.stack([preprocess(path, resolution) for path in paths])
    encoded = [trainer.encode(pixels[i:i + ENCODE_BATCH]) for i in range(0, len(pixels), ENCODE_BATCH)]
    return tuple(np.concatenate(parts) for parts in zip(*encoded))


def train_lora(engine, images, out_dir, *, prompt: str | Sequence[str], steps: int = 500, rank: int = 4, alpha: float | None = None,
               lr: float = 1e-4, resolution: int = 512, batch_size: int = 1, seed: int = 0,
               max_grad_norm: float = 1.0, targets=DEFAULT_TARGETS, lr_scheduler: str = "constant",
               lr_warmup_steps: int = 0, gradient_accumulation_steps: int = 1, checkpoint_every: int = 0,
               prior: PriorPreservation | None = None, text_encoder: TextEncoderLora | None = None,
               validation=None, snapshot_steps=()) -> list[float]:
    """Train, write the outputs into out_dir, and return the per-step losses.

    `prompt`: the instance prompt, or one per image (a LoRA shared by styles, each with its own token).
    Resumes from out_dir/checkpoint.npz when it was written with the same settings and inputs; writes
    one every `checkpoint_every` steps (0: never) and on SIGTERM (then raises TrainingInterrupted).
    `snapshot_steps`: also write the LoRA at each of these steps (`snapshot_file`); the checkpoint of the
    last step is then kept, so a later run with more steps (a step-free schedule) continues from it.
    """
    from tqdm.auto import tqdm

    from . import checkpoint
    from ..storage.fileio import atomic_path
    from ..reporting.plots import plot_loss

    engine.check_resolution(resolution)
    out_dir = Path(out_dir)
    alpha = float(rank if alpha is None else alpha)
    accumulation = gradient_accumulation_steps
    factors = lr_factors(lr_scheduler, lr_warmup_steps, steps)
    snapshots = sorted(set(snapshot_steps))
    if snapshots and not 1 <= snapshots[0] <= snapshots[-1] <= steps:
        raise ValueError(f"snapshot steps {snapshots} are not within 1..{steps}")
    prompts = [prompt] * len(images) if isinstance(prompt, str) else list(prompt)
    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} instance prompts for {len(images)} images")
    label = prompt if isinstance(prompt, str) else f"shared by {len(set(prompts))} instance prompts"
    settings = dict(engine=engine.name, model=engine.fingerprint, dtype=str(engine.dtype), prompt=prompt,
                    steps=None if lr_scheduler in STEP_FREE_SCHEDULERS else steps, rank=rank, alpha=alpha, lr=lr, resolution=resolution, batch_size=batch_size,
                    seed=seed, max_grad_norm=max_grad_norm, targets=list(targets), lr_scheduler=lr_scheduler,
                    lr_warmup_steps=lr_warmup_steps, accumulation=accumulation,
                    prior=prior and dict(prompt=prior.prompt, weight=prior.weight),
                    text_encoder=text_encoder and asdict(text_encoder),
                    validation=validation and validation.settings())
    key = checkpoint.settings_hash(settings, list(images) + list(prior.images if prior else []))
    trainer = engine.lora_trainer(rank=rank, alpha=alpha, targets=tuple(targets), lr=lr,
                                  max_grad_norm=max_grad_norm,
                                  **({"text_encoder": text_encoder} if text_encoder else {}))
    mean, std = _encode(trainer, images, resolution)
    count = len(images)
    if prior:  # the batch holds the instance images, then as many class images (diffusers' collate_fn)
        class_mean, class_std = _encode(trainer, prior.images, resolution)
        count = max(len(images), len(prior.images))

    rng = np.random.default_rng(seed)
    batches = ImageBatches(count, batch_size)
    path = out_dir / CHECKPOINT_FILE
    with checkpoint.sigterm_flag() as stop:  # from here on SIGTERM means: checkpoint, then stop
        resumed = checkpoint.load(path, key)
        reached = {}
        if resumed:
            start, state, meta = resumed
            state, reached = _split_snapshots(state)
            missing = [s for s in snapshots if s < start and s not in reached]
            if start > steps or missing:
                log.warning("not resuming %s: it is at step %d, this run trains %d steps%s", path, start, steps,
                            f" and wants snapshots {missing} before it" if missing else "")
                resumed = None
        if resumed:
            trainer.load_training_state(state)
            rng.bit_generator.state = meta["rng"]
            batches.order, losses = meta["order"], meta["losses"]
            log.info("resumed at step %d of %d from %s", start, steps, path)
        else:
            start, losses, reached = 0, [], {}
            shapes = {name: value.shape for name, value in trainer.lora_state_dict().items()}
            unet_shapes = {name: shape for name, shape in shapes.items() if not name.startswith(TEXT_ENCODER_PREFIX)}
            initial = initial_lora(unet_shapes, rng)
            initial.update(initial_lora({name: shapes[name] for name in shapes.keys() - unet_shapes.keys()}, rng))
            trainer.load_lora_state_dict(initial)
            if validation:
                validation.reset(out_dir)
                validation.run(engine, 0, out_dir)

        def draws():
            index = batches.next(rng)
            if prior:
                pairs = [index % len(images), index % len(prior.images)]
                mu, sigma = np.concatenate([mean[pairs[0]], class_mean[pairs[1]]]), np.concatenate(
                    [std[pairs[0]], class_std[pairs[1]]])
            else:
                mu, sigma = mean[index], std[index]
            x0 = mu + sigma * rng.standard_normal(mu.shape, dtype=np.float32)
            noise = rng.standard_normal(x0.shape, dtype=np.float32)
            t = rng.integers(0, len(engine.schedule.alphas_cumprod), size=len(x0))
            x_t, target = noisy_and_target(engine.schedule, x0, noise, t)
            texts = [prompts[i] for i in index % len(images)] + ([prior.prompt] * len(index) if prior else [])
            return x_t, t, target, texts

        def save_checkpoint(step):
            kept = {f"{SNAPSHOT_KEY}{s}/{name}": value for s, lora in reached.items() for name, value in lora.items()}
            checkpoint.save(path, key, step, {**trainer.training_state(), **kept},
                            dict(rng=rng.bit_generator.state, order=batches.order, losses=losses))

        progress = tqdm(range(start, steps), desc=f"train-lora {label}", leave=False, initial=start, total=steps)
        for step in progress:
            for _ in range(accumulation):
                x_t, t, target, texts = draws()
                trainer.backward(x_t, t, target, trainer.condition(texts),
                                 prior_weight=prior.weight if prior else None, scale=1.0 / accumulation)
            loss = trainer.update(factors[step])
            losses.append(loss)
            progress.set_postfix(loss=f"{loss:.4f}")
            done = step + 1
            if done in snapshots:
                reached[done] = trainer.lora_state_dict()
            # each snapshot validated too: the report shows its strip beside the candidates it generated
            if validation and (done % validation.every == 0 or done in snapshots):
                validation.run(engine, done, out_dir)
            if stop.is_set():
                save_checkpoint(done)
                raise TrainingInterrupted(done)
            if checkpoint_every and done % checkpoint_every == 0 and done < steps:
                save_checkpoint(done)

    with atomic_path(out_dir / "loss.csv") as tmp:
        tmp.write_text("step,loss\n" + "".join(f"{i},{loss:.8g}\n" for i, loss in enumerate(losses, 1)))
    plot_loss(losses, out_dir / "loss.png", title=f"LoRA training loss ({label})")
    for step in snapshots:
        save_lora(snapshot_file(out_dir, step), reached[step], alpha / rank)
    if snapshots:
        save_checkpoint(steps)  # a longer run continues from here
    save_lora(out_dir / LORA_FILE, trainer.lora_state_dict(), alpha / rank)  # last: its presence means done
    if not snapshots:
        path.unlink(missing_ok=True)
    log.info("trained LoRA %r for %d steps on %d image(s): loss %.4f -> %.4f; wrote %s", label, steps,
             len(images), losses[0], losses[-1], out_dir / LORA_FILE)
    return losses
