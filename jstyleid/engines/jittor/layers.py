"""Small layers shared by the UNet, the VAE and the text encoder."""

import numpy as np

from . import import_jittor

jt = import_jittor()
from jittor import nn  # noqa: E402  (jittor must be imported through import_jittor first)


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


def nearest_resize(x, size):
    """torch's ``interpolate(mode="nearest", size=size)`` (source index floor(i * float32(in / out)))."""
    (h, w), (out_h, out_w) = x.shape[2:], size
    if (out_h, out_w) == (2 * h, 2 * w):
        # exact doubling (every SD resolution): a broadcast instead of a gather
        x = x.reshape((x.shape[0], x.shape[1], h, 1, w, 1))
        return x.broadcast((x.shape[0], x.shape[1], h, 2, w, 2)).reshape((x.shape[0], x.shape[1], out_h, out_w))
    rows, cols = _nearest_index(h, out_h), _nearest_index(w, out_w)
    return x[:, :, rows][:, :, :, cols]


def _nearest_index(n_in, n_out):
    scale = np.float32(n_in / n_out)
    index = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int32)
    return jt.array(np.minimum(index, n_in - 1))


class Upsample2D(nn.Module):
    """Nearest-neighbour upsampling followed by a 3x3 conv."""

    def __init__(self, channels):
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def execute(self, x, output_size=None):
        if output_size is None:
            output_size = (x.shape[2] * 2, x.shape[3] * 2)
        return self.conv(nearest_resize(x, output_size))


class Downsample2D(nn.Module):
    """Strided 3x3 conv. ``padding=0`` is the VAE encoder's variant, padded (0, 1, 0, 1) by hand."""

    def __init__(self, channels, padding=1):
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def execute(self, x):
        if self.padding == 0:
            x = nn.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class ResnetBlock2D(nn.Module):
    """diffusers' ResnetBlock2D with ``time_embedding_norm="default"``."""

    def __init__(self, in_channels, out_channels, temb_channels, groups, eps, act_fn, output_scale_factor=1.0):
        self.act = get_activation(act_fn)
        self.output_scale_factor = output_scale_factor
        self.norm1 = GroupNorm(groups, in_channels, eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels is not None else None
        self.norm2 = GroupNorm(groups, out_channels, eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def execute(self, x, temb=None):
        h = self.conv1(self.act(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(self.act(temb))[:, :, None, None]
        h = self.conv2(self.act(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return (x + h) / self.output_scale_factor
