"""Engines: every tensor operation of the stages sits behind jstyleid.engines.base.Engine."""

from __future__ import annotations

ENGINES = ("torch", "jittor")


def load_engine(name: str, model: str, device: str = "auto", dtype: str = "auto", lora: str | None = None):
    """Load `model` (see jstyleid.models.resolve_model) on the named engine."""
    if name == "torch":
        from .torch import TorchEngine

        return TorchEngine(model, device=device, dtype=dtype, lora=lora)
    if name == "jittor":
        from .jittor.engine import JittorEngine

        return JittorEngine(model, device=device, dtype=dtype, lora=lora)
    raise ValueError(f"unknown engine {name!r}; choose one of {ENGINES}")


def add_engine_arguments(parser) -> None:
    """The options every model-using stage shares."""
    parser.add_argument("--model", required=True,
                        help="diffusers model folder, hub id in the local cache, or builtin:tiny")
    parser.add_argument("--engine", choices=ENGINES, default="torch")
    parser.add_argument("--device", default="auto", help="auto (a free GPU, else cpu), cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                        help="auto: float16 on GPU, float32 on CPU")
