"""jstyleid: batch StyleID style transfer with Stable Diffusion 2.x."""

__version__ = "0.1.0"
