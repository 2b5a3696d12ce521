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
from pathlib import Path

import numpy as np

from .engines.base import LORA_FILE
from .errors import InputError

COMMAND = "train-lora"
HELP = "DreamBooth-LoRA fine-tune the U-Net on one style folder; writes pytorch_lora_weights.safetensors"
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
ENCODE_BATCH = 4
log = logging.getLogger(__name__)


def add_arguments(parser):
    from .engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument("--style-dir", required=True, help="style folder (with images/)")
    parser.add_argument("--out-dir", required=True,
                        help="writes pytorch_lora_weights.safetensors, loss.csv and loss.png here")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--alpha", type=float, help="LoRA alpha (default: the rank, i.e. scale 1)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--instance-prompt", help='default: "style_" + the style folder\'s name')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS),
                        help="U-Net module names that get LoRA layers")


def run(args):
    from .engines import load_engine
    from .inputs import style_images

    images = style_images(args.style_dir)  # fail on a bad folder before loading the model
    for option in ("steps", "rank", "batch_size"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')}", "must be at least 1")
    prompt = args.instance_prompt or f"style_{Path(args.style_dir).resolve().name}"
    engine = load_engine(args.engine, args.model, args.device, args.dtype)
    train_lora(engine, images, args.out_dir, prompt=prompt, steps=args.steps, rank=args.rank, alpha=args.alpha,
               lr=args.lr, resolution=args.resolution, batch_size=args.batch_size, seed=args.seed,
               max_grad_norm=args.max_grad_norm, targets=args.targets)


def noisy_and_target(schedule, x0: np.ndarray, noise: np.ndarray, t: np.ndarray):
    """x_t = sqrt(abar) x0 + sqrt(1-abar) eps, and what the U-Net should predict there:
    eps for epsilon models, the velocity v = sqrt(abar) eps - sqrt(1-abar) x0 for v_prediction."""
    a = schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    x_t = np.sqrt(a) * x0 + np.sqrt(1 - a) * noise
    target = noise if schedule.prediction_type == "epsilon" else np.sqrt(a) * noise - np.sqrt(1 - a) * x0
    return x_t.astype(np.float32), target.astype(np.float32)


def initial_lora(shapes: dict[str, tuple], rank: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """peft's "gaussian" init: down (lora_A) ~ N(0, 1/rank^2), up (lora_B) = 0, so training starts at the base model."""
    return {key: (rng.standard_normal(shapes[key]) / rank).astype(np.float32) if ".lora.down." in key
            else np.zeros(shapes[key], np.float32) for key in sorted(shapes)}


def _image_batches(rng: np.random.Generator, count: int, batch_size: int):
    """Indices in reshuffled epochs, like a shuffling DataLoader."""
    order: list[int] = []
    while True:
        while len(order) < batch_size:
            order.extend(rng.permutation(count).tolist())
        yield np.array(order[:batch_size])
        del order[:batch_size]


def save_lora(path, state_dict: dict[str, np.ndarray], scale: float) -> None:
    """Write `unet.`-prefixed diffusers LoRA keys; alpha / rank is folded into the up weights, so every
    loader (diffusers' load_lora_weights, which assumes alpha = rank without metadata) gets the same model."""
    from safetensors.numpy import save

    from .fileio import atomic_path

    tensors = {f"unet.{key}": np.ascontiguousarray(value * scale if ".lora.up." in key else value, np.float32)
               for key, value in state_dict.items()}
    with atomic_path(path) as tmp:
        tmp.write_bytes(save(tensors, metadata={"format": "pt"}))  # save_file would make it owner-only


def train_lora(engine, images, out_dir, *, prompt: str, steps: int = 500, rank: int = 4, alpha: float | None = None,
               lr: float = 1e-4, resolution: int = 512, batch_size: int = 1, seed: int = 0,
               max_grad_norm: float = 1.0, targets=DEFAULT_TARGETS) -> list[float]:
    """Train, write the outputs into out_dir, and return the per-step losses."""
    from tqdm.auto import tqdm

    from .fileio import atomic_path
    from .inputs import preprocess
    from .plots import plot_loss

    engine.check_resolution(resolution)
    pixels = np.stack([preprocess(path, resolution) for path in images])
    alpha = float(rank if alpha is None else alpha)
    trainer = engine.lora_trainer(rank=rank, alpha=alpha, targets=tuple(targets), lr=lr,
                                  max_grad_norm=max_grad_norm)
    encoded = [trainer.encode(pixels[i:i + ENCODE_BATCH]) for i in range(0, len(pixels), ENCODE_BATCH)]
    mean, std = (np.concatenate(parts) for parts in zip(*encoded))
    cond = engine.text([prompt])

    rng = np.random.default_rng(seed)
    shapes = {key: value.shape for key, value in trainer.lora_state_dict().items()}
    trainer.load_lora_state_dict(initial_lora(shapes, rank, rng))
    batches = _image_batches(rng, len(images), batch_size)
    num_train_timesteps = len(engine.schedule.alphas_cumprod)
    losses = []
    progress = tqdm(range(steps), desc=f"train-lora {prompt}", leave=False)
    for _ in progress:
        index = next(batches)
        x0 = mean[index] + std[index] * rng.standard_normal(mean[index].shape, dtype=np.float32)
        noise = rng.standard_normal(x0.shape, dtype=np.float32)
        t = rng.integers(0, num_train_timesteps, size=len(index))
        x_t, target = noisy_and_target(engine.schedule, x0, noise, t)
        losses.append(trainer.step(x_t, t, target, cond))
        progress.set_postfix(loss=f"{losses[-1]:.4f}")

    out_dir = Path(out_dir)
    with atomic_path(out_dir / "loss.csv") as tmp:
        tmp.write_text("step,loss\n" + "".join(f"{i},{loss:.8g}\n" for i, loss in enumerate(losses, 1)))
    plot_loss(losses, out_dir / "loss.png", title=f"LoRA training loss ({prompt})")
    save_lora(out_dir / LORA_FILE, trainer.lora_state_dict(), alpha / rank)  # last: its presence means done
    log.info("trained LoRA %r for %d steps on %d image(s): loss %.4f -> %.4f; wrote %s", prompt, steps,
             len(images), losses[0], losses[-1], out_dir / LORA_FILE)
    return losses
