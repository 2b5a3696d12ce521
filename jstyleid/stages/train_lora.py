"""`jstyleid train-lora`: DreamBooth LoRA on one style folder, or one LoRA shared by several (the workflow's
lora_scope: shared passes them in an --args-file manifest); the loop: jstyleid/training/lora.py."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import InputError
from ..training.checkpoint import TrainingInterrupted
from ..training.lora import (DEFAULT_TARGETS, LR_SCHEDULERS, PriorPreservation, TextEncoderLora,
                             train_lora)

from .options import add_batch_size_argument, add_renamed_argument, ddim_steps, non_negative_int, positive_int

log = logging.getLogger(__name__)


COMMAND = "train-lora"
HELP = "DreamBooth-LoRA fine-tune the U-Net on one style folder; writes pytorch_lora_weights.safetensors"


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument("--style-dir", required=True, nargs="+",
                        help="style folder (with images/); several: one LoRA shared by them, each style its own "
                             "instance prompt style_<folder name>")
    parser.add_argument("--out-dir", required=True,
                        help="writes pytorch_lora_weights.safetensors, loss.csv and loss.png here")
    add_renamed_argument(parser, "--train-steps", "--steps", type=positive_int, default=500, help="optimiser steps")
    parser.add_argument("--rank", type=positive_int, default=4)
    parser.add_argument("--alpha", type=float, help="LoRA alpha (default: the rank, i.e. scale 1)")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--resolution", type=int, default=512)
    add_batch_size_argument(parser, default=1)
    parser.add_argument("--instance-prompt", help='default: "style_" + the style folder\'s name (one folder only)')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-grad-norm", type=float, default=1.0)
    parser.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS),
                        help="U-Net module names that get LoRA layers")
    schedule = parser.add_argument_group("schedule")
    schedule.add_argument("--lr-scheduler", default="constant", choices=LR_SCHEDULERS,
                          help="diffusers.optimization.get_scheduler's name")
    schedule.add_argument("--lr-warmup-steps", type=non_negative_int, default=0)
    schedule.add_argument("--gradient-accumulation-steps", type=positive_int, default=1,
                          help="batches whose gradients one optimiser step sums (each loss / this number)")
    resume = parser.add_argument_group("checkpoints")
    resume.add_argument("--checkpoint-every", type=non_negative_int, default=100,
                        help="write out-dir/checkpoint.npz every K steps (0: only on SIGTERM); a rerun resumes from it")
    resume.add_argument("--snapshot-steps", type=positive_int, nargs="+", default=[], metavar="STEP",
                        help="also write the LoRA at these steps to out-dir/snapshots/step-STEP/ (each at most "
                             "--train-steps) and keep the last checkpoint, so a run with more steps continues from it")
    prior = parser.add_argument_group("prior preservation (DreamBooth's class-prior loss)")
    prior.add_argument("--class-dir", help="folder of class images (jstyleid class-images); turns it on")
    prior.add_argument("--class-prompt", help="the prompt the class images were generated from")
    prior.add_argument("--prior-loss-weight", type=float, default=1.0)
    text = parser.add_argument_group("text-encoder LoRA")
    text.add_argument("--text-encoder-lora", action="store_true", help="also train LoRA layers in the text encoder")
    text.add_argument("--text-encoder-rank", type=positive_int, default=4)
    text.add_argument("--text-encoder-lr", type=float, default=5e-6)
    validation = parser.add_argument_group("validation strips")
    validation.add_argument("--validation-every", type=non_negative_int, default=0,
                            help="every N steps (and before the first) generate --validation-prompt with the "
                                 "current LoRA into out-dir/validation/ (0: off)")
    validation.add_argument("--validation-prompt", nargs="+", default=[], help="prompts, each with a fixed seed")
    add_renamed_argument(validation, "--validation-ddim-steps", "--validation-steps", type=ddim_steps, default=10,
                         help="DDIM steps of a validation image")
    validation.add_argument("--validation-guidance", type=float, default=7.5)


def run(args):
    from ..engines import load_engine
    from ..storage.inputs import style_images

    if args.instance_prompt and len(args.style_dir) > 1:
        raise InputError("--instance-prompt", "a shared LoRA gives each style folder its own: style_<folder name>")
    per_style = [style_images(folder) for folder in args.style_dir]  # fail on a bad folder before loading the model
    images = [image for folder in per_style for image in folder]
    prompts = [args.instance_prompt or f"style_{Path(folder).resolve().name}"
               for folder, found in zip(args.style_dir, per_style) for _ in found]
    if any(step > args.train_steps for step in args.snapshot_steps):
        raise InputError("--snapshot-steps", f"{max(args.snapshot_steps)} is beyond --train-steps {args.train_steps}")
    prior = None
    if args.class_dir:
        if not args.class_prompt:
            raise InputError("--class-prompt", "give the class prompt with --class-dir")
        prior = PriorPreservation(style_images(args.class_dir), args.class_prompt,
                                  args.prior_loss_weight)
    if args.validation_every and not args.validation_prompt:
        raise InputError("--validation-prompt", "give the prompts of --validation-every")
    from ..training.validation import Validation

    prompt = prompts[0] if len(args.style_dir) == 1 else prompts
    engine = load_engine(args.engine, args.model, args.device, args.dtype)
    try:
        train_lora(engine, images, args.out_dir, prompt=prompt, steps=args.train_steps, rank=args.rank,
                   alpha=args.alpha, lr=args.lr, resolution=args.resolution, batch_size=args.batch_size,
                   seed=args.seed, max_grad_norm=args.max_grad_norm, targets=args.targets,
                   lr_scheduler=args.lr_scheduler, lr_warmup_steps=args.lr_warmup_steps,
                   gradient_accumulation_steps=args.gradient_accumulation_steps,
                   checkpoint_every=args.checkpoint_every, prior=prior,
                   text_encoder=TextEncoderLora(args.text_encoder_rank, args.text_encoder_lr)
                   if args.text_encoder_lora else None,
                   validation=Validation(args.validation_prompt, args.validation_every, args.validation_ddim_steps,
                                         args.validation_guidance, args.seed, args.resolution)
                   if args.validation_every else None,
                   snapshot_steps=args.snapshot_steps)
    except TrainingInterrupted as stop:
        log.error("%s", stop)
        raise SystemExit(143) from None  # 128 + SIGTERM, as if the signal had killed it
