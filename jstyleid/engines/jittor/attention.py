"""Attention with a swappable processor: the seam for recording and injecting q/k/v.

Every :class:`Attention` calls ``attn.processor(attn, hidden_states, encoder_hidden_states)``
and knows its module path (``attn.name``, e.g.
``up_blocks.2.attentions.0.transformer_blocks.0.attn1``), so a caller can replace the
processor of chosen layers with :func:`set_processors`. Processors are plain callables,
not Jittor modules (a module would be walked as a child and its Vars taken for weights).
"""

from . import import_jittor
from .layers import GroupNorm

jt = import_jittor()
from jittor import nn


def attention(q, k, v, heads, scale, mask=None, upcast=False):
    """Multi-head scaled dot-product attention.

    ``q``: (batch, q_tokens, inner), ``k``/``v``: (batch, kv_tokens, inner), with
    inner = heads * head_dim; returns (batch, q_tokens, inner). ``mask`` is added to
    the scores, broadcast to (batch, heads, q_tokens, kv_tokens). ``upcast`` computes
    the scores in float32 (diffusers' ``upcast_attention``); the softmax always is.
    """
    b, n_q, _ = q.shape
    n_k = k.shape[1]
    out_dtype = v.dtype

    def split_heads(x, n):
        return x.reshape((b, n, heads, -1)).transpose((0, 2, 1, 3))

    q, k, v = split_heads(q, n_q), split_heads(k, n_k), split_heads(v, n_k)
    if upcast:
        q, k = q.float32(), k.float32()
    scores = jt.matmul(q, k.transpose((0, 1, 3, 2))) * scale
    if mask is not None:
        scores = scores + mask
    probs = nn.softmax(scores.float32(), dim=-1).cast(out_dtype)
    out = jt.matmul(probs, v)
    return out.transpose((0, 2, 1, 3)).reshape((b, n_q, -1))


class AttnProcessor:
    """Standard attention, as diffusers' default processor."""

    def __call__(self, attn, hidden_states, encoder_hidden_states=None):
        residual = hidden_states
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states)
        # The VAE's mid-block attention works on feature maps: tokens are the pixels.
        spatial_shape = hidden_states.shape if hidden_states.ndim == 4 else None
        if spatial_shape is not None:
            b, c, h, w = spatial_shape
            hidden_states = hidden_states.reshape((b, c, h * w)).transpose((0, 2, 1))
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
        out = attn.to_out[0](attention(q, k, v, attn.heads, attn.scale, upcast=attn.upcast_attention))
        if spatial_shape is not None:
            out = out.transpose((0, 2, 1)).reshape(spatial_shape)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class Attention(nn.Module):
    """diffusers' ``Attention``: to_q/to_k/to_v, to_out.0, optional group_norm (VAE only)."""

    def __init__(
        self,
        query_dim,
        heads,
        dim_head,
        cross_attention_dim=None,
        bias=False,
        upcast_attention=False,
        norm_num_groups=None,
        eps=1e-5,
        residual_connection=False,
        rescale_output_factor=1.0,
    ):
        inner_dim = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.upcast_attention = upcast_attention
        self.residual_connection = residual_connection
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = GroupNorm(norm_num_groups, query_dim, eps) if norm_num_groups else None
        self.to_q = nn.Linear(query_dim, inner_dim, bias=bias)
        self.to_k = nn.Linear(cross_attention_dim or query_dim, inner_dim, bias=bias)
        self.to_v = nn.Linear(cross_attention_dim or query_dim, inner_dim, bias=bias)
        # diffusers' to_out.1 is a dropout: nothing to do at inference
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, query_dim)])
        self.name = ""  # module path, filled in by name_attention_modules()
        self.processor = AttnProcessor()

    def execute(self, hidden_states, encoder_hidden_states=None):
        return self.processor(self, hidden_states, encoder_hidden_states)


def name_attention_modules(model):
    """Store each Attention's module path in its ``name`` (done by the model constructors)."""
    for name, module in model.named_modules():
        if isinstance(module, Attention):
            module.name = name


def attention_modules(model):
    """All Attention modules of ``model``, by module path."""
    return {name: module for name, module in model.named_modules() if isinstance(module, Attention)}


def set_processors(model, mapping):
    """Install ``mapping[name]`` as the processor of the Attention at module path ``name``."""
    modules = attention_modules(model)
    unknown = sorted(set(mapping) - set(modules))
    if unknown:
        raise KeyError(f"no Attention module named {unknown}; known names look like {next(iter(modules), None)!r}")
    for name, processor in mapping.items():
        modules[name].processor = processor
