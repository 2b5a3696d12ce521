"""Argument groups that several stages share (a stage never imports another stage)."""

from __future__ import annotations


def add_inversion_arguments(parser):
    """The options of the inversion that `stylize` shares."""
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps N (2..999)")
    parser.add_argument("--resolution", type=int, default=512)


def add_injection_arguments(parser):
    """The options of the injection that `stylize` shares."""
    parser.add_argument("--gamma", type=float, default=0.75, help="query preservation")
    parser.add_argument("--temperature", type=float, default=1.5, help="attention temperature T")
    parser.add_argument("--no-adain", action="store_true", help="start from the content latent unchanged")
