"""`jstyleid generate`: content images from prompts (the loop: jstyleid/pipelines/generate.py)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..pipelines.generate import generate_images
from ..storage.store import add_store_argument
from .options import add_batch_size_argument, add_ddim_steps_argument, positive_int


COMMAND = "generate"
HELP = "generate images for prompts (e.g. a style's prompt.json) with DDIM + guidance, optionally with a LoRA"


def add_arguments(parser):
    from ..pipelines.candidates import METRICS
    from ..engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument("--lora", help="pytorch_lora_weights.safetensors or its folder (default: the base model)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", nargs="+", help="prompts, each with one --out")
    source.add_argument("--prompts", help="a style's prompt.json; writes --out-dir/<prompt>.png")
    parser.add_argument("--out", nargs="+", help="one .png per --prompt")
    parser.add_argument("--out-dir", help="output folder for --prompts")
    parser.add_argument("--template", default="{prompt}", help='text fed to the model, e.g. "{prompt} in style_01"')
    parser.add_argument("--negative-prompt", default="", help="the unconditional text of classifier-free guidance")
    add_ddim_steps_argument(parser)
    parser.add_argument("--guidance", type=float, default=7.5, help="guidance scale; <= 1 turns guidance off")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    add_batch_size_argument(parser)
    init = parser.add_mutually_exclusive_group()
    init.add_argument("--init-image", nargs="+", metavar="IMAGE",
                      help="img2img: start from this image (every prompt) or these (one per prompt), see --strength")
    init.add_argument("--init-mean", nargs="+", metavar="IMAGE",
                      help="img2img from the per-pixel mean of these images (e.g. a style's references)")
    parser.add_argument("--strength", type=float, default=0.8,
                        help="img2img strength in (0, 1]: how much noise the init latent gets (diffusers' meaning)")
    parser.add_argument("--candidates", type=positive_int, default=1, metavar="K",
                        help="generate K seeds per prompt and keep the best by --candidates-metric")
    parser.add_argument("--candidates-metric", choices=METRICS, default="hist",
                        help="the score that keeps a candidate (jstyleid.evaluation, higher is better)")
    parser.add_argument("--references", nargs="+", metavar="IMAGE", help="the style images candidates are scored against")
    parser.add_argument("--metric-weights", default="",
                        help="weights of dino / clip_r (folder or hub id in the local cache; default: the scorer's)")
    add_store_argument(parser)


def run(args):
    from ..engines import load_engine
    from ..storage.fileio import check_names
    from ..storage.inputs import read_prompts, safe_filename

    if args.prompts:
        if not args.out_dir or args.out:
            raise InputError("--prompts", "give --out-dir (not --out) with a prompt file")
        prompts = list(read_prompts(args.prompts).values())
        outs = [Path(args.out_dir) / f"{safe_filename(p)}.png" for p in prompts]
    else:
        if not args.out or len(args.out) != len(args.prompt) or args.out_dir:
            raise InputError("--out", f"give one --out per --prompt ({len(args.prompt)})")
        prompts, outs = args.prompt, args.out
    check_names(outs)
    if "{prompt}" not in args.template:
        raise InputError("--template", f"{args.template!r} has no {{prompt}} placeholder")
    init = _img2img_start(args, len(prompts))  # init images are read before the model loads
    scorer = _candidate_scorer(args)
    engine = load_engine(args.engine, args.model, args.device, args.dtype, lora=args.lora)
    options = dict(steps=args.ddim_steps, guidance=args.guidance, resolution=args.resolution, template=args.template,
                   seed=args.seed, batch_size=args.batch_size, negative_prompt=args.negative_prompt, store=args.store,
                   init=init)
    if scorer is None:
        generate_images(engine, prompts, outs, **options)
        return
    from ..pipelines.candidates import candidate_paths, keep_best

    for k in range(args.candidates):
        generate_images(engine, prompts, [candidate_paths(out, args.candidates)[k] for out in outs], candidate=k,
                        **options)
    scorer.load(str(engine.device) if engine.name == "torch" else "cpu")
    keep_best(outs, args.candidates, scorer, args.references, args.candidates_metric)


def _candidate_scorer(args):
    """The scorer of --candidates K > 1 (its weights checked before any image is made), else None."""
    if args.candidates == 1:
        return None
    if not args.references and args.candidates_metric != "clip_r":
        raise InputError("--references", f"{args.candidates_metric} scores candidates against the style's images")
    from ..pipelines.candidates import MetricScorer
    from ..storage.inputs import load_rgb

    for path in args.references or []:
        load_rgb(path)  # an unreadable reference is refused now, not after the candidates
    return MetricScorer(args.candidates_metric, args.metric_weights)


def _img2img_start(args, n_prompts):
    """The img2img start of --init-image / --init-mean, or None for starts from pure noise."""
    from ..core.img2img import Img2ImgStart, mean_image
    from ..storage.inputs import preprocess
    from ..core.schedule import img2img_timesteps, timesteps

    if not (args.init_image or args.init_mean):
        return None
    img2img_timesteps(timesteps(args.ddim_steps), args.strength)  # refuse a strength that runs no step
    pixels = ([mean_image(args.init_mean, args.resolution)] if args.init_mean
              else [preprocess(path, args.resolution) for path in args.init_image])
    return Img2ImgStart(pixels, args.strength, n_prompts)
