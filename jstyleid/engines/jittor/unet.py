"""diffusers' UNet2DConditionModel, the subset Stable Diffusion 2.x (and 1.x) uses."""

import collections
import math
from functools import partial
from pathlib import Path

from . import import_jittor
from .attention import Attention, name_attention_modules
from .blocks import DownBlock, MidBlock, ResnetBlock2D, UpBlock
from .layers import GroupNorm, LayerNorm, get_activation
from .weights import load_weights, read_config

jt = import_jittor()
from jittor import nn

# Config entries that would change the network, with the only value supported here.
_FIXED_CONFIG = {
    "center_input_sample": False,
    "dual_cross_attention": False,
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "class_embed_type": None,
    "num_class_embeds": None,
    "addition_embed_type": None,
    "resnet_time_scale_shift": "default",
    "resnet_skip_time_act": False,
    "resnet_out_scale_factor": 1.0,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "time_embedding_act_fn": None,
    "timestep_post_act": None,
    "time_cond_proj_dim": None,
    "attention_type": "default",
    "cross_attention_norm": None,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "reverse_transformer_layers_per_block": None,
    "num_attention_heads": None,  # diffusers itself rejects it for this model
}
_DOWN_BLOCKS = {"CrossAttnDownBlock2D", "DownBlock2D"}
_UP_BLOCKS = {"CrossAttnUpBlock2D", "UpBlock2D"}


def timestep_embedding(timesteps, batch, dim, flip_sin_to_cos, freq_shift, max_period=10000):
    """Sinusoidal timestep features, as diffusers' ``get_timestep_embedding``."""
    t = timesteps if isinstance(timesteps, jt.Var) else jt.array(timesteps)
    t = t.float32().reshape((-1,)) * jt.ones((batch,))  # one timestep for the whole batch, or one each
    half = dim // 2
    exponent = -math.log(max_period) * jt.arange(half).float32() / (half - freq_shift)
    args = t[:, None] * jt.exp(exponent)[None, :]
    sin, cos = jt.sin(args), jt.cos(args)
    emb = jt.concat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)
    if dim % 2:
        emb = nn.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim, act_fn):
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.act = get_activation(act_fn)
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def execute(self, x):
        return self.linear_2(self.act(self.linear_1(x)))


class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def execute(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * nn.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        inner_dim = dim * mult
        # diffusers' net.1 is a dropout: keeping the index, not the layer, keeps the weight names
        self.net = nn.Sequential(
            collections.OrderedDict([("0", GEGLU(dim, inner_dim)), ("2", nn.Linear(inner_dim, dim))])
        )

    def execute(self, x):
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention (attn1), cross-attention on the text (attn2), GEGLU feed-forward; pre-norm."""

    def __init__(self, dim, heads, head_dim, cross_attention_dim, upcast_attention):
        self.norm1 = LayerNorm(dim)
        self.attn1 = Attention(dim, heads, head_dim, upcast_attention=upcast_attention)
        self.norm2 = LayerNorm(dim)
        self.attn2 = Attention(
            dim, heads, head_dim, cross_attention_dim=cross_attention_dim, upcast_attention=upcast_attention
        )
        self.norm3 = LayerNorm(dim)
        self.ff = FeedForward(dim)

    def execute(self, h, context):
        h = self.attn1(self.norm1(h)) + h
        h = self.attn2(self.norm2(h), context) + h
        return self.ff(self.norm3(h)) + h


class Transformer2DModel(nn.Module):
    """Feature map -> tokens -> transformer blocks -> feature map, plus the input (residual).

    ``use_linear_projection`` (SD 2.x) projects the tokens with Linear layers; otherwise
    (SD 1.x) 1x1 convs project the feature map.
    """

    def __init__(
        self,
        heads,
        head_dim,
        in_channels,
        num_layers,
        cross_attention_dim,
        groups,
        use_linear_projection,
        upcast_attention,
    ):
        inner_dim = heads * head_dim
        self.use_linear_projection = use_linear_projection
        self.norm = GroupNorm(groups, in_channels, eps=1e-6)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, inner_dim)
            self.proj_out = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, 1)
            self.proj_out = nn.Conv2d(inner_dim, in_channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [
                BasicTransformerBlock(inner_dim, heads, head_dim, cross_attention_dim, upcast_attention)
                for _ in range(num_layers)
            ]
        )

    def execute(self, x, context):
        b, _, height, width = x.shape
        h = self.norm(x)
        if not self.use_linear_projection:
            h = self.proj_in(h)
        h = h.transpose((0, 2, 3, 1)).reshape((b, height * width, -1))
        if self.use_linear_projection:
            h = self.proj_in(h)
        for block in self.transformer_blocks:
            h = block(h, context)
        if self.use_linear_projection:
            h = self.proj_out(h)
        h = h.reshape((b, height, width, -1)).transpose((0, 3, 1, 2))
        if not self.use_linear_projection:
            h = self.proj_out(h)
        return h + x


def _per_block(value, n):
    """A config value given once for all blocks, or as a list with one entry per block."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


class UNet2DConditionModel(nn.Module):
    """``unet(sample, timestep, encoder_hidden_states)`` -> noise (or v) prediction.

    Built from a diffusers ``config.json`` dict; parameter names equal diffusers' state-dict keys.
    """

    def __init__(self, config):
        self.config = config
        _check_supported(config)
        channels = list(config["block_out_channels"])
        n = len(channels)
        groups, eps, act_fn = config["norm_num_groups"], config["norm_eps"], config["act_fn"]
        layers = _per_block(config["layers_per_block"], n)
        # diffusers' UNet configs misname the head count "attention_head_dim" (diffusers issue 2011)
        heads = _per_block(config["attention_head_dim"], n)
        cross_dims = _per_block(config["cross_attention_dim"], n)
        transformer_layers = _per_block(config.get("transformer_layers_per_block", 1), n)
        time_embed_dim = channels[0] * 4

        resnet = partial(ResnetBlock2D, temb_channels=time_embed_dim, groups=groups, eps=eps, act_fn=act_fn)
        linear, upcast = config.get("use_linear_projection", False), config.get("upcast_attention", False)

        def transformer(i):
            """Builder of block i's Transformer2DModel; head_dim = channels // heads."""
            return lambda c: Transformer2DModel(
                heads[i], c // heads[i], c, transformer_layers[i], cross_dims[i], groups, linear, upcast
            )

        self.flip_sin_to_cos, self.freq_shift = config["flip_sin_to_cos"], config["freq_shift"]
        self.time_proj_dim = channels[0]
        kernel_in, kernel_out = config.get("conv_in_kernel", 3), config.get("conv_out_kernel", 3)
        self.conv_in = nn.Conv2d(config["in_channels"], channels[0], kernel_in, padding=(kernel_in - 1) // 2)
        self.time_embedding = TimestepEmbedding(channels[0], time_embed_dim, act_fn)

        self.down_blocks = nn.ModuleList()
        for i, block_type in enumerate(config["down_block_types"]):
            cross_attn = block_type == "CrossAttnDownBlock2D"
            self.down_blocks.append(
                DownBlock(
                    channels[max(i - 1, 0)],
                    channels[i],
                    layers[i],
                    add_downsample=i < n - 1,
                    resnet=resnet,
                    transformer=transformer(i) if cross_attn else None,
                    downsample_padding=config.get("downsample_padding", 1),
                )
            )

        mid_resnet = partial(resnet, output_scale_factor=config.get("mid_block_scale_factor", 1))
        self.mid_block = MidBlock(channels[-1], 1, mid_resnet, transformer(n - 1))

        # Up block i mirrors down block j = n-1-i: same settings, and its resnets also take
        # that block's skips (the last one being the down block's input).
        self.up_blocks = nn.ModuleList()
        for i, block_type in enumerate(config["up_block_types"]):
            j = n - 1 - i
            out_channels, prev_channels, skip_in = channels[j], channels[min(j + 1, n - 1)], channels[max(j - 1, 0)]
            num_layers = layers[j] + 1
            resnet_in = [
                (prev_channels if k == 0 else out_channels) + (skip_in if k == num_layers - 1 else out_channels)
                for k in range(num_layers)
            ]
            cross_attn = block_type == "CrossAttnUpBlock2D"
            self.up_blocks.append(
                UpBlock(
                    resnet_in,
                    out_channels,
                    add_upsample=i < n - 1,
                    resnet=resnet,
                    transformer=transformer(j) if cross_attn else None,
                )
            )

        self.conv_norm_out = GroupNorm(groups, channels[0], eps)
        self.act = get_activation(act_fn)
        self.conv_out = nn.Conv2d(channels[0], config["out_channels"], kernel_out, padding=(kernel_out - 1) // 2)
        name_attention_modules(self)

    @classmethod
    def from_pretrained(cls, folder, variant=None):
        """Build from ``folder/config.json`` and load ``diffusion_pytorch_model[.variant].safetensors``."""
        model = cls(read_config(folder))
        weights = "diffusion_pytorch_model" + (f".{variant}" if variant else "") + ".safetensors"
        return load_weights(model, Path(folder) / weights).eval()

    def execute(self, sample, timestep, encoder_hidden_states):
        t_emb = timestep_embedding(timestep, sample.shape[0], self.time_proj_dim, self.flip_sin_to_cos, self.freq_shift)
        temb = self.time_embedding(t_emb)
        h = self.conv_in(sample)
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = block(h, temb, encoder_hidden_states)
            skips += block_skips
        h = self.mid_block(h, temb, encoder_hidden_states)
        for block in self.up_blocks:
            n_skips = len(block.resnets)
            block_skips, skips = skips[-n_skips:], skips[:-n_skips]
            # upsample to the next skip's size: odd sizes are not a plain doubling
            upsample_size = skips[-1].shape[2:] if skips else None
            h = block(h, temb, encoder_hidden_states, block_skips, upsample_size)
        return self.conv_out(self.act(self.conv_norm_out(h)))


def _check_supported(config):
    for key, supported in _FIXED_CONFIG.items():
        if config.get(key, supported) != supported:
            raise NotImplementedError(f"UNet config {key}={config[key]!r} is not supported (only {supported!r})")
    if config.get("norm_num_groups") is None:
        raise NotImplementedError("UNet config norm_num_groups=None is not supported")
    n = len(config["block_out_channels"])
    if any(_per_block(config.get("only_cross_attention", False), n)):
        raise NotImplementedError("UNet config only_cross_attention is not supported")
    if any(isinstance(v, (list, tuple)) for v in _per_block(config.get("transformer_layers_per_block", 1), n)):
        raise NotImplementedError("per-layer transformer_layers_per_block lists are not supported")
    unknown = set(config["down_block_types"]) - _DOWN_BLOCKS | set(config["up_block_types"]) - _UP_BLOCKS
    if unknown:
        raise NotImplementedError(f"UNet block types {sorted(unknown)} are not supported")
