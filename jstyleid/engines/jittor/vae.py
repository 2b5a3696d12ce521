"""diffusers' AutoencoderKL: ``encode(x)`` -> latent mean (unscaled), ``decode(z)`` -> image."""

import re
from functools import partial
from pathlib import Path

from . import import_jittor
from .attention import Attention, name_attention_modules
from .blocks import DownBlock, MidBlock, ResnetBlock2D, UpBlock
from .layers import GroupNorm
from .weights import load_weights, read_config

jt = import_jittor()
from jittor import nn

# Checkpoints saved before diffusers 0.14 name the mid-block attention layers differently.
_LEGACY_ATTENTION = re.compile(r"(mid_block\.attentions\.\d+\.)(query|key|value|proj_attn)\.")
_LEGACY_NAMES = {"query": "to_q.", "key": "to_k.", "value": "to_v.", "proj_attn": "to_out.0."}


def _rename_legacy(key):
    return _LEGACY_ATTENTION.sub(lambda m: m.group(1) + _LEGACY_NAMES[m.group(2)], key)


def _resnet(config):
    """Builder of the VAE's resnets: eps 1e-6, no time embedding."""
    return partial(
        ResnetBlock2D, temb_channels=None, groups=config["norm_num_groups"], eps=1e-6, act_fn=config["act_fn"]
    )


def _mid_block(config):
    """Resnet, attention (one head spanning all channels, with its own group norm and residual), resnet."""
    groups = config["norm_num_groups"]

    def attention(channels):
        return Attention(channels, 1, channels, bias=True, norm_num_groups=groups, eps=1e-6, residual_connection=True)

    add_attention = config.get("mid_block_add_attention", True)
    return MidBlock(config["block_out_channels"][-1], 1, _resnet(config), attention if add_attention else None)


class Encoder(nn.Module):
    def __init__(self, config):
        channels = config["block_out_channels"]
        self.conv_in = nn.Conv2d(config["in_channels"], channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            [
                DownBlock(
                    channels[max(i - 1, 0)],
                    channels[i],
                    config["layers_per_block"],
                    add_downsample=i < len(channels) - 1,
                    resnet=_resnet(config),
                    downsample_padding=0,
                )
                for i in range(len(channels))
            ]
        )
        self.mid_block = _mid_block(config)
        self.conv_norm_out = GroupNorm(config["norm_num_groups"], channels[-1], 1e-6)
        # mean and log-variance of the latent distribution
        self.conv_out = nn.Conv2d(channels[-1], 2 * config["latent_channels"], 3, padding=1)

    def execute(self, x):
        h = self.conv_in(x)
        for block in self.down_blocks:
            h, _ = block(h)
        h = self.mid_block(h)
        return self.conv_out(nn.silu(self.conv_norm_out(h)))  # SiLU whatever act_fn says, as diffusers


class Decoder(nn.Module):
    def __init__(self, config):
        channels = config["block_out_channels"][::-1]
        num_layers = config["layers_per_block"] + 1
        self.conv_in = nn.Conv2d(config["latent_channels"], channels[0], 3, padding=1)
        self.mid_block = _mid_block(config)
        self.up_blocks = nn.ModuleList(
            [
                UpBlock(
                    [channels[max(i - 1, 0)]] + [channels[i]] * (num_layers - 1),
                    channels[i],
                    add_upsample=i < len(channels) - 1,
                    resnet=_resnet(config),
                )
                for i in range(len(channels))
            ]
        )
        self.conv_norm_out = GroupNorm(config["norm_num_groups"], channels[-1], 1e-6)
        self.conv_out = nn.Conv2d(channels[-1], config["out_channels"], 3, padding=1)

    def execute(self, z):
        h = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            h = block(h)
        return self.conv_out(nn.silu(self.conv_norm_out(h)))  # SiLU whatever act_fn says, as diffusers


class AutoencoderKL(nn.Module):
    """Built from a diffusers ``config.json`` dict; parameter names equal diffusers' state-dict keys.

    Latents are unscaled: multiply by ``config["scaling_factor"]`` for the UNet.
    """

    def __init__(self, config):
        unknown_down = set(config["down_block_types"]) - {"DownEncoderBlock2D"}
        unknown_up = set(config["up_block_types"]) - {"UpDecoderBlock2D"}
        if unknown_down or unknown_up:
            raise NotImplementedError(f"VAE block types {sorted(unknown_down | unknown_up)} are not supported")
        self.config = config
        latent = config["latent_channels"]
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1) if config.get("use_quant_conv", True) else None
        self.post_quant_conv = nn.Conv2d(latent, latent, 1) if config.get("use_post_quant_conv", True) else None
        name_attention_modules(self)

    @classmethod
    def from_pretrained(cls, folder, variant=None):
        """Build from ``folder/config.json`` and load ``diffusion_pytorch_model[.variant].safetensors``."""
        model = cls(read_config(folder))
        weights = "diffusion_pytorch_model" + (f".{variant}" if variant else "") + ".safetensors"
        return load_weights(model, Path(folder) / weights, rename=_rename_legacy).eval()

    def encode(self, x):
        """Image in [-1, 1], (batch, 3, H, W) -> mean of the latent distribution."""
        return self._moments(x)[:, : self.config["latent_channels"]]

    def latent_distribution(self, x):
        """Image -> (mean, std) of the latent distribution, as diffusers' DiagonalGaussianDistribution."""
        moments = self._moments(x)
        latent = self.config["latent_channels"]
        logvar = moments[:, latent:].clamp(-30.0, 20.0)
        return moments[:, :latent], jt.exp(0.5 * logvar)

    def _moments(self, x):
        moments = self.encoder(x)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        return moments

    def decode(self, z):
        """Unscaled latent -> image in about [-1, 1]."""
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)
