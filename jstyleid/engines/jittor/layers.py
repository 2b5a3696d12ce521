"""Norms and activations shared by the UNet, the VAE and the text encoder."""

from . import import_jittor

jt = import_jittor()
from jittor import nn


def _normalize(x, dims, eps):
    # Two-pass variance: Jittor's own norms use E[x^2] - E[x]^2, which loses
    # precision on the large activations of real checkpoints.
    centered = x - x.mean(dims=dims, keepdims=True)
    var = (centered * centered).mean(dims=dims, keepdims=True)
    return centered / jt.sqrt(var + eps)


class GroupNorm(nn.Module):
    def __init__(self, num_groups, num_channels, eps=1e-5):
        self.num_groups = num_groups
        self.eps = eps
        self.weight = jt.ones(num_channels)
        self.bias = jt.zeros(num_channels)

    def execute(self, x):
        b, c = x.shape[:2]
        grouped = x.reshape((b, self.num_groups, -1))
        x = _normalize(grouped, [2], self.eps).reshape(x.shape)
        affine_shape = (1, c) + (1,) * (x.ndim - 2)
        return x * self.weight.reshape(affine_shape) + self.bias.reshape(affine_shape)


class LayerNorm(nn.Module):
    def __init__(self, dim, eps=1e-5):
        self.eps = eps
        self.weight = jt.ones(dim)
        self.bias = jt.zeros(dim)

    def execute(self, x):
        return _normalize(x, [x.ndim - 1], self.eps) * self.weight + self.bias


def quick_gelu(x):
    return x * jt.sigmoid(1.702 * x)


_ACTIVATIONS = {
    "silu": nn.silu,
    "swish": nn.silu,
    "gelu": nn.gelu,  # exact (erf) form, as torch's default
    "quick_gelu": quick_gelu,
    "relu": nn.relu,
}


def get_activation(name):
    """The activation function for a config's ``act_fn`` / ``hidden_act``."""
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise NotImplementedError(f"activation {name!r} is not supported (known: {sorted(_ACTIVATIONS)})") from None
