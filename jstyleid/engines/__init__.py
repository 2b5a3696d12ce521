"""Engines: every tensor operation of the stages sits behind jstyleid.engines.base.Engine."""

from __future__ import annotations

import sys

ENGINES = ("torch", "jittor")


def import_model_classes_without_peft() -> None:
    """Import the torch engine's diffusers and transformers classes with peft hidden: both libraries
    import peft at import time whenever it is installed (2.3 s of a job's start-up), and decide then,
    once for the process, whether they use it. So this process can load no LoRA weights afterwards:
    call it only in the process of a job that loads none. Bits are unchanged: with no LoRA layers
    diffusers' peft hooks do nothing. (torch._dynamo cannot be kept out the same way: diffusers'
    hooks decorate classes with torch.compiler.disable, which imports it.) A no-op where diffusers is
    already imported."""
    if "diffusers" in sys.modules or "peft" in sys.modules:
        return
    sys.modules["peft"] = None  # None: `import peft` fails and importlib.util.find_spec finds nothing
    try:
        from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
        from diffusers.models.attention_processor import AttnProcessor2_0  # noqa: F401
        from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401
    finally:
        del sys.modules["peft"]


def load_engine(name: str, model: str, device: str = "auto", dtype: str = "auto", lora: str | None = None,
                layers=None):
    """Load `model` (see jstyleid.engines.models.resolve_model) on the named engine.

    `layers`: the injected self-attention layers, module paths or presets of jstyleid.core.layers
    (default: the spec's six decoder layers; an empty list injects nothing: plain DDIM).
    """
    from ..core.layers import resolve_layers
    from .base import INJECTED_LAYERS

    options = dict(device=device, dtype=dtype, lora=lora,
                   layers=INJECTED_LAYERS if layers is None else resolve_layers(layers) if layers else ())
    if name == "torch":
        from .torch import TorchEngine

        return TorchEngine(model, **options)
    if name == "jittor":
        from .jittor.engine import JittorEngine

        return JittorEngine(model, **options)
    raise ValueError(f"unknown engine {name!r}; choose one of {ENGINES}")


def add_engine_arguments(parser, layers: bool = False) -> None:
    """The options every model-using stage shares (`layers`: also --layers, for invert and inject)."""
    parser.add_argument("--model", required=True,
                        help="diffusers model folder, hub id in the local cache, or builtin:tiny")
    parser.add_argument("--engine", choices=ENGINES, default="torch")
    parser.add_argument("--device", default="auto", help="auto (a free GPU, else cpu), cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                        help="auto: float16 on GPU, float32 on CPU")
    if layers:
        from .base import INJECTED_LAYERS

        parser.add_argument("--layers", nargs="+", default=list(INJECTED_LAYERS), metavar="LAYER",
                            help="injected self-attention layers: diffusers module paths or the presets "
                                 "spec6 (the default: up_blocks.{2,3}.attentions.{0,1,2}.transformer_blocks.0.attn1) "
                                 "and sd21_7to11 (StyleID's advice for SD 2.1: decoder layers 7-11)")
