"""Convolutional building blocks shared by the UNet and the VAE (diffusers' names and layouts)."""

import numpy as np

from . import import_jittor
from .layers import GroupNorm, get_activation

jt = import_jittor()
from jittor import nn


def nearest_resize(x, size):
    """torch's ``interpolate(mode="nearest", size=size)`` (source index floor(i * float32(in / out)))."""
    b, c, h, w = x.shape
    out_h, out_w = size
    if (out_h, out_w) == (2 * h, 2 * w):
        # exact doubling (every SD resolution): a broadcast instead of a gather
        x = x.reshape((b, c, h, 1, w, 1)).broadcast((b, c, h, 2, w, 2))
        return x.reshape((b, c, out_h, out_w))
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


class DownBlock(nn.Module):
    """diffusers' DownBlock2D / DownEncoderBlock2D, or CrossAttnDownBlock2D when given ``transformer``.

    ``resnet(in_channels, out_channels)`` and ``transformer(channels)`` build the layers,
    so the UNet and the VAE share this block with their own settings.
    """

    def __init__(
        self, in_channels, out_channels, num_layers, add_downsample, resnet, transformer=None, downsample_padding=1
    ):
        self.resnets = nn.ModuleList(
            [resnet(in_channels if i == 0 else out_channels, out_channels) for i in range(num_layers)]
        )
        self.attentions = nn.ModuleList([transformer(out_channels) for _ in range(num_layers)]) if transformer else None
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels, downsample_padding)]) if add_downsample else None

    def execute(self, h, temb=None, context=None):
        """Returns the output and the skip connections for the matching up block."""
        skips = []
        for i, resnet in enumerate(self.resnets):
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h, context)
            skips.append(h)
        if self.downsamplers is not None:
            h = self.downsamplers[0](h)
            skips.append(h)
        return h, skips


class MidBlock(nn.Module):
    """diffusers' UNetMidBlock2DCrossAttn / UNetMidBlock2D: resnet, then (attention, resnet) per layer.

    Without ``attention`` (VAE config ``mid_block_add_attention: false``) the resnets stay.
    """

    def __init__(self, channels, num_layers, resnet, attention=None):
        self.resnets = nn.ModuleList([resnet(channels, channels) for _ in range(num_layers + 1)])
        self.attentions = nn.ModuleList([attention(channels) for _ in range(num_layers)]) if attention else None

    def execute(self, h, temb=None, context=None):
        h = self.resnets[0](h, temb)
        for i, resnet in enumerate(self.resnets[1:]):
            if self.attentions is not None:
                h = self.attentions[i](h, context)
            h = resnet(h, temb)
        return h


class UpBlock(nn.Module):
    """diffusers' UpBlock2D / CrossAttnUpBlock2D (skips concatenated to each resnet's input),
    or the VAE's UpDecoderBlock2D (no skips). ``resnet_in_channels`` counts the skip channels."""

    def __init__(self, resnet_in_channels, out_channels, add_upsample, resnet, transformer=None):
        self.resnets = nn.ModuleList([resnet(c, out_channels) for c in resnet_in_channels])
        self.attentions = (
            nn.ModuleList([transformer(out_channels) for _ in resnet_in_channels]) if transformer else None
        )
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def execute(self, h, temb=None, context=None, skips=None, upsample_size=None):
        """``skips`` come from the matching down block and are used last one first."""
        for i, resnet in enumerate(self.resnets):
            if skips is not None:
                h = jt.concat([h, skips[-1 - i]], dim=1)
            h = resnet(h, temb)
            if self.attentions is not None:
                h = self.attentions[i](h, context)
        if self.upsamplers is not None:
            h = self.upsamplers[0](h, upsample_size)
        return h
