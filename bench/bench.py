#!/usr/bin/env python
"""Per-stage speed of jstyleid on one device, beside a reimplementation of the seed's procedure.

    GPU:        python bench/bench.py --preset sd21 --resolution 512 768 --out bench/results-DATE.json
    CPU smoke:  python bench/bench.py --preset tiny --resolution 64 --ddim-steps 3 --smoke
    levers:     ... --dtype bfloat16 | --compile [MODE] | --channels-last | --no-upcast | --batch-size N
    compare:    python bench/bench.py --compare a.json b.json

Every figure runs the jstyleid code path a job runs (TorchEngine, train-lora's trainer, generate_images,
invert_images, stylize). Method and results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# Only the standard library at import time: the start-up probe times the imports of torch and diffusers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TQDM_DISABLE", "1")

CHALLENGE = dict(styles=28, prompts=25, refs=3, lora_steps=500)
ISSUE_FLOOR_S = 0.105  # issue 4: 100 U-Net evaluations of 804 GFLOP + 3.6 TFLOP VAE at 800 TFLOP/s
GAMMA, TEMPERATURE, GUIDANCE = 0.75, 1.5, 7.5
SMOKE = dict(repeats=1, warmup=0, batch_size=2, refs=[1, 2], gen_steps=3, lora_steps=3, lora_warmup=1,
             e2e_prompts=2, e2e_refs=2, e2e_lora_steps=2)
STAGES = ("startup", "lora", "generate", "styleid", "floor", "e2e")


def parse_args(argv=None):
    from jstyleid.stages.options import DEFAULT_DDIM_STEPS, add_renamed_argument, positive_int

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="sd21", help="make-model preset (built once under --work)")
    p.add_argument("--model", help="a diffusers model folder instead of a preset")
    p.add_argument("--resolution", type=int, nargs="+", default=[512])
    add_renamed_argument(p, "--ddim-steps", "--steps", type=positive_int, default=DEFAULT_DDIM_STEPS,
                         help="inversion / injection DDIM steps")
    p.add_argument("--gen-steps", type=int, default=25)
    p.add_argument("--batch-size", type=positive_int, default=8, help="contents per call (generation: prompts)")
    p.add_argument("--refs", type=int, nargs="+", default=[1, 3], help="style references per style")
    p.add_argument("--lora-batch", type=int, default=1)
    p.add_argument("--lora-steps", type=int, default=20, help="timed LoRA steps")
    p.add_argument("--lora-warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before them")
    p.add_argument("--e2e-styles", type=int, default=1, help="scaled set for the end-to-end estimate")
    p.add_argument("--e2e-prompts", type=int, default=25)
    p.add_argument("--e2e-refs", type=int, default=3)
    p.add_argument("--e2e-lora-steps", type=int, default=50)
    p.add_argument("--e2e-features", choices=("stored", "recompute"), default="recompute")
    p.add_argument("--peak-tflops", type=float, default=800.0, help="device throughput for the compute floor")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    p.add_argument("--compile", nargs="?", const="default", help="torch.compile the U-Net (optional mode)")
    p.add_argument("--channels-last", action="store_true", help="U-Net and VAE in channels_last")
    p.add_argument("--no-upcast", action="store_true",
                   help="injected layers' SDPA in the compute dtype, not fp32 (fused kernels accumulate in fp32)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "jstyleid-bench",
                   help="models are kept here; each run's scratch files are removed")
    p.add_argument("--out", type=Path, help="results JSON")
    p.add_argument("--smoke", action="store_true", help="tiny counts, one repeat: checks the script runs")
    p.add_argument("--compare", nargs="+", type=Path, metavar="JSON", help="print results side by side")
    p.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)  # internal: start-up probe
    first, _ = p.parse_known_args(argv)
    if first.smoke:
        p.set_defaults(**SMOKE)
    return p.parse_args(argv)


# -- timing ------------------------------------------------------------------------------------------
def sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def timed(fn, cuda: bool) -> float:
    sync(cuda)
    start = time.perf_counter()
    fn()
    sync(cuda)
    return time.perf_counter() - start


def measure(fn, args, repeats=None, warmup=None):
    """Median seconds of fn() over `repeats` runs after `warmup` untimed ones; peak GPU bytes of the timed runs."""
    import torch

    for _ in range(args.warmup if warmup is None else warmup):
        fn()
    if args.cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = statistics.median(timed(fn, args.cuda) for _ in range(args.repeats if repeats is None else repeats))
    return seconds, torch.cuda.max_memory_allocated() if args.cuda else None


def figure(value, unit, peak=None, baseline=None, note=""):
    """One result row; `speedup` = seed baseline / jstyleid, both measured in this process."""
    return dict(value=value, unit=unit, peak_gib=peak / 2**30 if peak else None, baseline=baseline,
                speedup=baseline / value if baseline else None, note=note)


# -- engines and inputs ------------------------------------------------------------------------------
def load(args, model, lora=None):
    """A TorchEngine as a job loads it, with the levers of this run applied."""
    from jstyleid.engines import load_engine

    return with_levers(load_engine("torch", str(model), args.device, args.dtype, lora=lora), args)


def with_levers(engine, args):
    import torch

    if args.channels_last:
        engine.unet_model.to(memory_format=torch.channels_last)
        engine.vae.to(memory_format=torch.channels_last)
    if args.compile:
        # The StyleID processors make one graph per call kind (record q, record k/v, inject stored or
        # recomputed, plain) and batch size: more than dynamo's default limit of 8 recompiles.
        torch._dynamo.config.recompile_limit = 64
        engine.unet_model.compile(mode=args.compile)  # in place: engine.unet and the trainer call it
    return engine


def patch_library(args) -> None:
    """Levers that need a library change, tried here by patching it in this process only."""
    if args.no_upcast:
        from jstyleid.engines.torch import TorchEngine, attention

        # StyleIDAttnProcessor calls engine.attention
        TorchEngine.attention = staticmethod(lambda q, k, v, heads, scale, upcast: attention(q, k, v, heads, scale, False))


def release(args):
    """Free the engines of the finished stage, so each stage's peak memory is its own."""
    import torch

    gc.collect()
    if args.compile:
        torch._dynamo.reset()
    if args.cuda:
        torch.cuda.empty_cache()


def synthetic_images(folder: Path, prefix: str, count: int, res: int, seed: int = 0) -> list[Path]:
    """Smooth random RGB pictures (bilinearly enlarged colour blocks) as PNG files."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"{prefix}{i}.png" for i in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((res, res), Image.BILINEAR).save(path)
    return paths


def inject_files(engine, content_h5, style_h5, outs, mode, batch_size):
    """`jstyleid inject` minus its start-up: open the caches, stylize, decode, write PNGs."""
    from jstyleid.storage.cache import open_caches
    from jstyleid.pipelines.inject import inject_images

    caches = open_caches(content_h5, "content"), open_caches(style_h5, "style")
    try:
        inject_images(engine, *caches, outs, gamma=GAMMA, temperature=TEMPERATURE, use_adain=True, mode=mode,
                batch_size=batch_size)
    finally:
        for cache in caches[0] + caches[1]:
            cache.close()


@contextlib.contextmanager
def swapped_processors(model, make):
    """Temporarily give every attention layer of a diffusers model the processor make(layer name)."""
    saved = dict(model.attn_processors)
    model.set_attn_processor({name: make(name.removesuffix(".processor")) for name in saved})
    try:
        yield
    finally:
        model.set_attn_processor(saved)


# -- the seed's procedure (baseline) -----------------------------------------------------------------
class SeedAttnProcessor:
    """An injected self-attention as the seed ran it: classic bmm attention; q, k, v kept in Python lists."""

    def __init__(self, seed: "SeedProcedure", layer: str):
        self.seed, self.layer = seed, layer

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **_):
        import torch

        seed, h = self.seed, hidden_states
        q, k, v = attn.to_q(h), attn.to_k(h), attn.to_v(h)
        if seed.mode == "record":
            seed.saved[self.layer].append((q, k, v))
        elif seed.mode == "inject":  # q~ = gamma q_content + (1 - gamma) q; k, v of the style; T scales q k^T
            q_content = seed.content[self.layer][seed.step][0]
            _, k, v = seed.style[self.layer][seed.step]
            q = (GAMMA * q_content + (1 - GAMMA) * q) * TEMPERATURE
        q, k, v = (attn.head_to_batch_dim(t) for t in (q, k, v))
        out = attn.batch_to_head_dim(torch.bmm(attn.get_attention_scores(q, k), v))
        out = attn.to_out[1](attn.to_out[0](out))
        return (out + h if attn.residual_connection else out) / attn.rescale_output_factor


class SeedProcedure:
    """The seed report's StyleID, one image at a time: the U-Net on a classifier-free-guidance batch of two
    (both halves the empty prompt, guidance 7.5), q/k/v of the injected layers in Python lists on the GPU,
    classic bmm attention everywhere (diffusers' AttnProcessor), style inverted for every image.
    Use as a context manager: it swaps the engine's attention processors and restores them."""

    def __init__(self, engine, steps: int):
        from jstyleid.core.schedule import timesteps

        self.engine, self.taus = engine, timesteps(steps)
        self.mode, self.step, self.saved, self.content, self.style = None, 0, None, None, None
        empty = engine.text([""])
        self.cond = engine.cat([empty, empty])

    def __enter__(self):
        from diffusers.models.attention_processor import AttnProcessor

        injected = set(self.engine.injected_layers)
        self._swap = swapped_processors(self.engine.unet_model, lambda layer: SeedAttnProcessor(self, layer)
                                        if layer in injected else AttnProcessor())
        self._swap.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode = self.saved = self.content = self.style = None
        return self._swap.__exit__(*exc)

    def guided(self, x, tau):
        import torch

        with torch.no_grad():
            out = self.engine.unet_model(self.engine.cat([x, x]), tau, encoder_hidden_states=self.cond).sample
        uncond, cond = out.chunk(2)
        return uncond + GUIDANCE * (cond - uncond)

    def invert(self, pixels):
        """DDIM inversion of one image; returns (start latent, {layer: [(q, k, v) per step]})."""
        e, taus = self.engine, self.taus
        self.mode, self.saved = "record", defaultdict(list)
        x = e.encode(pixels[None])
        for i, tau in enumerate(taus):
            out = self.guided(x, tau)
            if i < len(taus) - 1:
                x = e.schedule.move(out, x, tau, taus[i + 1])
        saved, self.mode, self.saved = self.saved, None, None
        return x, saved

    def inject(self, content, style):
        """Injection from the lists, then decoding: one uint8 image."""
        from jstyleid.core.styleid import adain

        e, taus = self.engine, self.taus
        (x_content, self.content), (x_style, self.style) = content, style
        x = e.tensor(adain(e.numpy(x_content), [e.numpy(x_style)[0]]))
        self.mode = "inject"
        for i in range(len(taus) - 1, -1, -1):
            self.step = i
            x = e.schedule.move(self.guided(x, taus[i]), x, taus[i], taus[i - 1] if i > 0 else -1)
        self.mode = self.content = self.style = None
        return e.decode(x)

    def stylize(self, content_pixels, style_pixels):
        return self.inject(self.invert(content_pixels), self.invert(style_pixels))


# -- stages ------------------------------------------------------------------------------------------
def probe_startup(args):
    """Run in a fresh process (--probe): what a job pays before its work. Prints one JSON line.

    A job reads its weights into host memory before it claims the GPU (jstyleid/engines/devices.py), so the probe
    loads on the host, then moves the engine: with jobs in flight behind each other, only `to_device` and
    `first_unet_call` hold the GPU.
    """
    start = time.perf_counter()
    import torch

    t_torch = time.perf_counter()
    import diffusers  # noqa: F401
    import transformers  # noqa: F401
    from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401  (diffusers imports lazily)
    from transformers import CLIPTextModel  # noqa: F401

    from jstyleid.engines import load_engine

    t_diffusers = time.perf_counter()
    args.cuda = args.device.startswith("cuda")
    engine = load_engine("torch", str(args.model), "cpu", args.dtype)
    t_host = time.perf_counter()
    with_levers(engine.to(args.device), args)
    sync(args.cuda)
    t_device = time.perf_counter()
    side = args.resolution[0] // engine.vae_scale_factor
    engine.unet(engine.tensor(torch.zeros(1, 4, side, side)), 1, engine.text([""]))
    sync(args.cuda)
    print(json.dumps(dict(import_torch=t_torch - start, import_diffusers=t_diffusers - t_torch,
                          load_host=t_host - t_diffusers, to_device=t_device - t_host,
                          first_unet_call=time.perf_counter() - t_device)))


def bench_startup(args, model):
    argv = [sys.executable, __file__, "--probe", "--model", str(model), "--device", args.device, "--dtype",
            args.dtype, "--resolution", str(args.resolution[0])]
    argv += ["--channels-last"] * args.channels_last + ["--no-upcast"] * args.no_upcast
    argv += ["--compile", args.compile] if args.compile else []
    for _ in range(args.warmup + 1):  # the last run counts (OS file cache warm, as for most of a workflow's jobs)
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"start-up probe failed:\n{done.stderr[-3000:]}")
    parts = json.loads(done.stdout.strip().splitlines()[-1])
    rows = {name: figure(seconds, "s") for name, seconds in parts.items()}
    rows["job_overhead"] = figure(wall, "s", note="fresh process: interpreter, imports, model load, first U-Net call")
    rows["gpu_held_overhead"] = figure(parts["to_device"] + parts["first_unet_call"], "s",
                                       note="the part after the GPU claim: to_device + first_unet_call")
    return rows


def bench_lora(args, model, res, work):
    """ms per train-lora step (latents given), after warm-up; the seed also VAE-encoded the image every step."""
    import numpy as np

    from jstyleid.training.lora import DEFAULT_TARGETS, LORA_FILE, noisy_and_target, save_lora
    from jstyleid.storage.inputs import preprocess

    engine = load(args, model)  # torch.compile traces at the first call, after peft has added its layers
    trainer = engine.lora_trainer(rank=4, alpha=4.0, targets=DEFAULT_TARGETS, lr=1e-4, max_grad_norm=1.0)
    pixels = np.stack([preprocess(p, res) for p in synthetic_images(work, "lora", args.lora_batch, res)])
    mean, _ = trainer.encode(pixels)
    rng = np.random.default_rng(0)
    t = rng.integers(0, len(engine.schedule.alphas_cumprod), len(mean))
    x_t, target = noisy_and_target(engine.schedule, mean, rng.standard_normal(mean.shape, dtype=np.float32), t)
    cond = engine.text(["style_01"])
    step, peak = measure(lambda: trainer.step(x_t, t, target, cond), args, args.lora_steps, args.lora_warmup)
    encode, _ = measure(lambda: trainer.encode(pixels), args)
    save_lora(work / LORA_FILE, trainer.lora_state_dict(), 1.0)  # for the generation stage
    return {"lora_step": figure(step * 1e3, "ms/step", peak, (step + encode) * 1e3,
                                f"rank 4, batch {args.lora_batch}; seed: + VAE encode per step")}


def bench_generate(args, model, res, work):
    from jstyleid.training.lora import LORA_FILE
    from jstyleid.pipelines.generate import generate_images

    lora = work / LORA_FILE  # written by the lora stage; without it, the base model
    engine = load(args, model, lora=str(lora) if lora.exists() else None)
    prompts = [f"a picture of thing {i}" for i in range(args.batch_size)]
    outs = [work / f"gen{i}.png" for i in range(args.batch_size)]

    def run(n):
        generate_images(engine, prompts[:n], outs[:n], steps=args.gen_steps, guidance=GUIDANCE, resolution=res,
                        batch_size=n)

    seconds, peak = measure(lambda: run(args.batch_size), args)
    with SeedProcedure(engine, args.ddim_steps):  # its processors, no injection: classic attention, batch 1
        seed, _ = measure(lambda: run(1), args)
    return {"generate": figure(seconds / args.batch_size, "s/image", peak, seed,
                               f"{args.gen_steps} steps, CFG {GUIDANCE}, batch {args.batch_size}, LoRA loaded, "
                               "decode + PNG; seed: batch 1, bmm attention")}


def bench_styleid(args, model, res, work):
    """Inversion, warm injection from caches, the cold path in both feature modes, the seed's procedure."""
    from jstyleid.storage.inputs import preprocess
    from jstyleid.pipelines.invert import invert_images

    engine = load(args, model)
    n, refs = args.batch_size, max(args.refs)
    contents = synthetic_images(work, "content", n, res, seed=1)
    styles = synthetic_images(work, "style", refs, res, seed=2)
    h5 = {kind: [work / f"{kind}{i}.h5" for i in range(count)]
          for kind, count in (("content", n), ("style", refs), ("content-lat", n), ("style-lat", refs))}
    outs = [work / f"styleid{i}.png" for i in range(n)]

    def invert(images, key, role):
        invert_images(engine, images, h5[key][:len(images)], role=role, steps=args.ddim_steps, resolution=res,
                      features=not key.endswith("-lat"), batch_size=n)

    with SeedProcedure(engine, args.ddim_steps) as seed:
        content_px, style_px = preprocess(contents[0], res), preprocess(styles[0], res)
        seed_invert, _ = measure(lambda: seed.invert(content_px), args)
        inverted = seed.invert(content_px), seed.invert(style_px)
        seed_inject, _ = measure(lambda: seed.inject(*inverted), args)
        inverted = None  # frees the seed's in-memory features before the next figure
        seed_cold, seed_peak = measure(lambda: seed.stylize(content_px, style_px), args)
    rows = {}
    for role, images in (("content", contents), ("style", styles)):
        seconds, peak = measure(lambda: invert(images, role, role), args)
        rows[f"invert_{role}"] = figure(seconds / len(images), "s/image", peak, seed_invert,
                                        f"{len(images)} per call, features to HDF5; seed: one image, CFG batch 2")
    seconds, peak = measure(lambda: invert(contents, "content-lat", "content"), args)
    rows["invert_content_latents_only"] = figure(seconds / n, "s/image", peak, seed_invert, "invert --features recompute")
    invert(styles, "style-lat", "style")
    for r in args.refs:
        seeded = r == 1  # the seed used one style reference: its rows compare with r1 only
        for mode, suffix in (("stored", ""), ("recompute", "-lat")):
            c, s = h5["content" + suffix], h5["style" + suffix][:r]
            seconds, peak = measure(lambda: inject_files(engine, c, s, outs, mode, n), args)
            rows[f"inject_warm_{mode}_r{r}"] = figure(seconds / n, "s/image", peak, seed_inject if seeded else None,
                                                      f"{n} contents per call, decode + PNG included")

            def cold():
                invert(contents, "content" + suffix, "content")
                invert(styles[:r], "style" + suffix, "style")
                inject_files(engine, c, s, outs, mode, n)

            seconds, peak = measure(cold, args)
            rows[f"cold_{mode}_r{r}"] = figure(seconds / n, "s/image", peak, seed_cold if seeded else None,
                                               f"invert {n} contents + {r} style(s) + inject + decode")
    rows["seed_cold_r1"] = figure(seed_cold, "s/image", seed_peak, note="the seed's procedure, whole, per image")
    for key, paths in h5.items():
        rows[f"cache_{key.replace('-lat', '_latents_only')}"] = figure(os.path.getsize(paths[0]), "bytes/image")
    return rows


def bench_floor(args, model, res, _work=None):
    """FLOPs counted (torch.utils.flop_counter, attention as bmm) for one stylized image, over --peak-tflops."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor
    from torch.utils.flop_counter import FlopCounterMode

    engine = load(args, model)
    side = res // engine.vae_scale_factor
    latent, cond = engine.tensor(torch.zeros(1, 4, side, side)), engine.text([""])

    def count(fn):
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    with swapped_processors(engine.unet_model, lambda _: AttnProcessor()), \
            swapped_processors(engine.vae, lambda _: AttnProcessor()):
        unet = count(lambda: engine.unet(latent, 1, cond))
        vae = count(lambda: engine.encode(torch.zeros(1, 3, res, res).numpy())) + count(lambda: engine.decode(latent))
    total = 2 * args.ddim_steps * unet + vae
    return {"unet_call": figure(unet / 1e9, "GFLOP"), "vae_encode_decode": figure(vae / 1e12, "TFLOP"),
            "compute_floor": figure(total / (args.peak_tflops * 1e12), "s/image",
                                    note=f"(2 x {args.ddim_steps} U-Net calls + VAE) / {args.peak_tflops:g} TFLOP/s")}


def bench_e2e(args, model, res, work, overhead, lora_step_s=None):
    """The workflow's stage functions on a scaled set (S styles x P prompts x R refs), extrapolated.

    Training is extrapolated as t_train_lora(L steps) + (500 - L) x the lora stage's step time, so its fixed
    part (encoding, the loss plot) is not multiplied.
    """
    from jstyleid.training.lora import train_lora
    from jstyleid.pipelines.generate import generate_images
    from jstyleid.pipelines.invert import invert_images

    S, P, R, L = args.e2e_styles, args.e2e_prompts, args.e2e_refs, args.e2e_lora_steps
    stored = args.e2e_features == "stored"
    t = dict.fromkeys(("train_lora", "generate", "invert_style", "invert_content", "inject"), 0.0)
    for s in range(S):
        d = work / f"e2e{s}"
        refs = synthetic_images(d / "refs", "ref", R, res, seed=10 + s)
        contents, outs = [d / f"content{i}.png" for i in range(P)], [d / f"out{i}.png" for i in range(P)]
        content_h5, style_h5 = [d / f"c{i}.h5" for i in range(P)], [d / f"s{i}.h5" for i in range(R)]
        options = dict(steps=args.ddim_steps, resolution=res, features=stored, batch_size=args.batch_size)
        engine = load(args, model)  # each engine stands for one job; loading is in the job overhead
        t["train_lora"] += timed(lambda: train_lora(engine, refs, d, prompt=f"style_{s}", steps=L, resolution=res,
                                                  batch_size=args.lora_batch),
                                 args.cuda)
        engine = load(args, model, lora=str(d))
        t["generate"] += timed(lambda: generate_images(
            engine, [f"thing {i}" for i in range(P)], contents, steps=args.gen_steps, guidance=GUIDANCE,
            resolution=res, batch_size=args.batch_size), args.cuda)
        engine = load(args, model)
        t["invert_style"] += timed(lambda: invert_images(engine, refs, style_h5, role="style", **options), args.cuda)
        t["invert_content"] += timed(lambda: invert_images(engine, contents, content_h5, role="content", **options),
                                     args.cuda)
        t["inject"] += timed(lambda: inject_files(engine, content_h5, style_h5, outs, args.e2e_features,
                                                  args.batch_size), args.cuda)
        engine = None  # this style's jobs are over
        release(args)
    return dict(scaled_set=dict(styles=S, prompts=P, refs=R, lora_steps=L, features=args.e2e_features),
                measured_s=t, **extrapolate(t, S, P, R, L, lora_step_s or t["train_lora"] / (S * L), overhead))


def extrapolate(t, S, P, R, L, step, overhead, in_flight=(1, 2, 3)):
    """The challenge-size time from stage times measured on S styles x P prompts x R references (L LoRA steps).

    Each style runs five jobs; w is a job's GPU work at challenge size. A job's overhead splits at its GPU
    claim into h (before: interpreter, imports, reading weights) and e (after: to_device, first U-Net call).
    With K jobs in flight per GPU (`--resources gpu=K`), a job's h runs while the K - 1 before it hold the GPU;
    in steady state a job then takes max(e + w, (h + e + w) / K) of the GPU's time (K = 1: h + e + w).
    """
    c = CHALLENGE
    w = {"train_lora": t["train_lora"] / S + (c["lora_steps"] - L) * step,
         "generate": t["generate"] / S * c["prompts"] / P,
         "invert_style": t["invert_style"] / S * c["refs"] / R,
         "invert_content": t["invert_content"] / S * c["prompts"] / P,
         "inject": t["inject"] / S * c["prompts"] / P}
    h, e = overhead["total"] - overhead["gpu_held"], overhead["gpu_held"]
    minutes = {k: c["styles"] * sum(max(e + job, (h + e + job) / k) for job in w.values()) / 60 for k in in_flight}
    k = max(in_flight)
    jobs = ", ".join(f"{name} {seconds:.2f}" for name, seconds in w.items())
    formula = (f"T = {c['styles']} styles x sum over {len(w)} jobs of max(e + w, (h + e + w) / K), h = {h:.2f} s, "
               f"e = {e:.2f} s, w (s) = {jobs} (train_lora: {L} steps measured + {c['lora_steps'] - L} x "
               f"{step * 1e3:.1f} ms); K = {k}: {minutes[k]:.1f} min ("
               + ", ".join(f"K = {n}: {m:.1f}" for n, m in minutes.items() if n != k) + ")")
    return dict(lora_step_s=step, job_work_s=w, startup_s=dict(h=h, e=e), estimate_min=minutes[k],
                estimate_min_by_jobs_in_flight=minutes, formula=formula,
                note="one GPU; a final batch smaller than --batch-size is costed per image at the scaled set's rate")


# -- output ------------------------------------------------------------------------------------------
def environment(args):
    import diffusers
    import h5py
    import numpy
    import peft
    import torch
    import transformers

    import jstyleid

    device = (torch.cuda.get_device_name(torch.device(args.device)) if args.cuda
              else f"cpu ({platform.machine()}, {os.cpu_count()} cores)")
    versions = dict(python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version() if args.cuda else None, diffusers=diffusers.__version__,
                    transformers=transformers.__version__, peft=peft.__version__, h5py=h5py.__version__,
                    numpy=numpy.__version__, jstyleid=jstyleid.__version__)
    settings = {k: v for k, v in vars(args).items() if k not in ("compare", "probe", "out", "work", "stages")}
    return dict(device=device, date=datetime.date.today().isoformat(), versions=versions, settings=settings,
                work_filesystem=filesystem(args.work), issue_floor_s=ISSUE_FLOOR_S, startup={}, resolutions={})


def filesystem(path: Path) -> str | None:
    """The file system type holding `path` (caches are written there: tmpfs, ext4, ...), from /proc/mounts."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    path = str(path.resolve())
    inside = [(point, kind) for point, kind in mounts if path == point or path.startswith(point.rstrip("/") + "/")]
    return max(inside, key=lambda m: len(m[0]))[1] if inside else None


def number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def table(rows: dict) -> str:
    lines = ["| figure | jstyleid | unit | seed baseline | speed-up | peak GiB | note |", "|---" * 7 + "|"]
    for name, r in rows.items():
        speedup = f"{r['speedup']:.2f}x" if r["speedup"] else "-"
        lines.append(f"| {name} | {number(r['value'])} | {r['unit']} | {number(r['baseline'])} | {speedup} | "
                     f"{number(r['peak_gib'])} | {r['note']} |")
    return "\n".join(lines)


def report(results) -> str:
    s = results["settings"]
    out = [f"# jstyleid bench: {results['device']}, {results['date']}",
           f"{s['preset'] if not s['model'] else s['model']}, {s['dtype']}, {s['ddim_steps']} DDIM steps, batch "
           f"{s['batch_size']}, compile {s['compile']}, channels_last {s['channels_last']}, no_upcast "
           f"{s['no_upcast']}; work files on {results['work_filesystem']}; versions "
           + ", ".join(f"{k} {v}" for k, v in results["versions"].items())]
    if results["startup"]:
        out += ["\n## Job start-up", table(results["startup"])]
    for res, block in results["resolutions"].items():
        out += [f"\n## {res} px", table(block["figures"])]
        if "e2e" in block:
            out += [f"\nChallenge-size set (28 x 25 x 3), extrapolated from {block['e2e']['scaled_set']}:",
                    f"`{block['e2e']['formula']}`"]
    out.append(f"\nIssue 4's compute floor (quoted, not measured): {ISSUE_FLOOR_S} s/image on an H100.")
    return "\n".join(out)


def compare(paths) -> str:
    runs = [json.loads(p.read_text()) for p in paths]
    lines = ["| px | figure | unit | " + " | ".join(p.stem for p in paths) + " |", "|---" * (3 + len(paths)) + "|"]
    for key in ("device", "dtype", "compile", "channels_last", "no_upcast", "batch_size", "ddim_steps"):
        # runs recorded before the CLI grammar of issue 16 call the DDIM steps "steps"
        values = [run[key] if key in run else run["settings"].get(key, run["settings"].get("steps")) for run in runs]
        lines.append(f"| | {key} | | " + " | ".join(map(str, values)) + " |")
    keys = {(res, name, row["unit"]): None for run in runs for res, block in run["resolutions"].items()
            for name, row in block["figures"].items()}
    for res, name, unit in keys:
        values = [run["resolutions"].get(res, {}).get("figures", {}).get(name, {}).get("value") for run in runs]
        lines.append(f"| {res} | {name} | {unit} | " + " | ".join(number(v) for v in values) + " |")
    return "\n".join(lines)


def save(results, path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, path)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.compare:
        print(compare(args.compare))
        return 0
    patch_library(args)
    if args.probe:
        probe_startup(args)
        return 0
    from jstyleid.engines.devices import resolve_device, resolve_dtype
    from jstyleid.engines.models import fingerprint
    from jstyleid.engines.presets import make_model

    args.device = resolve_device(args.device)
    args.dtype = resolve_dtype(args.dtype, args.device.split(":")[0])
    args.cuda = args.device.startswith("cuda")
    args.work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else args.work / "models" / args.preset
    if not args.model and not (model / "model_index.json").is_file():
        make_model(args.preset, model)
    fingerprint(model)  # fills the fingerprint memo, as the first job of a workflow does for the rest
    results = environment(args)
    if "startup" in args.stages:
        results["startup"] = bench_startup(args, model)
        save(results, args.out)
    for res in args.resolution:
        block = results["resolutions"].setdefault(str(res), {"figures": {}})
        work = Path(tempfile.mkdtemp(prefix=f"run-{res}-", dir=args.work))
        try:
            for stage, run in (("lora", bench_lora), ("generate", bench_generate), ("styleid", bench_styleid),
                               ("floor", bench_floor)):
                if stage in args.stages:
                    block["figures"].update(run(args, model, res, work))
                    release(args)
                    save(results, args.out)
            if "e2e" in args.stages and res == args.resolution[0]:
                startup = results["startup"]
                overhead = {key: startup.get(name, {}).get("value", 0.0)
                            for key, name in (("total", "job_overhead"), ("gpu_held", "gpu_held_overhead"))}
                step_ms = block["figures"].get("lora_step", {}).get("value")
                block["e2e"] = bench_e2e(args, model, res, work, overhead, step_ms and step_ms / 1e3)
                save(results, args.out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
