"""Engines: every tensor operation of the stages sits behind jstyleid.engines.base.Engine."""

from __future__ import annotations

ENGINES = ("torch", "jittor")


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
