"""transformers' CLIPTextModel: ``text_encoder(input_ids)`` -> last_hidden_state."""

from pathlib import Path

import numpy as np

from . import import_jittor
from .attention import attention
from .layers import LayerNorm, get_activation
from .weights import load_weights, read_config

jt = import_jittor()
from jittor import nn


class CLIPAttention(nn.Module):
    def __init__(self, hidden, heads):
        self.heads = heads
        self.scale = (hidden // heads) ** -0.5
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def execute(self, h, mask):
        out = attention(self.q_proj(h), self.k_proj(h), self.v_proj(h), self.heads, self.scale, mask=mask)
        return self.out_proj(out)


class CLIPMLP(nn.Module):
    def __init__(self, hidden, intermediate, act):
        self.fc1 = nn.Linear(hidden, intermediate)
        self.act = get_activation(act)
        self.fc2 = nn.Linear(intermediate, hidden)

    def execute(self, h):
        return self.fc2(self.act(self.fc1(h)))


class CLIPEncoderLayer(nn.Module):
    def __init__(self, config):
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.self_attn = CLIPAttention(hidden, config["num_attention_heads"])
        self.layer_norm1 = LayerNorm(hidden, eps)
        self.mlp = CLIPMLP(hidden, config["intermediate_size"], config["hidden_act"])
        self.layer_norm2 = LayerNorm(hidden, eps)

    def execute(self, h, mask):
        h = h + self.self_attn(self.layer_norm1(h), mask)
        return h + self.mlp(self.layer_norm2(h))


class CLIPEmbeddings(nn.Module):
    def __init__(self, config):
        self.token_embedding = nn.Embedding(config["vocab_size"], config["hidden_size"])
        self.position_embedding = nn.Embedding(config["max_position_embeddings"], config["hidden_size"])

    def execute(self, input_ids):
        positions = jt.arange(input_ids.shape[1]).int32()
        return self.token_embedding(input_ids) + self.position_embedding(positions)[None]


class CLIPEncoder(nn.Module):
    def __init__(self, config):
        self.layers = nn.ModuleList([CLIPEncoderLayer(config) for _ in range(config["num_hidden_layers"])])

    def execute(self, h, mask):
        for layer in self.layers:
            h = layer(h, mask)
        return h


class CLIPTextModel(nn.Module):
    """Built from a transformers ``config.json`` dict; parameter names equal transformers' (v5)
    state-dict keys. Files written by older transformers (Stable Diffusion's) prefix them
    with ``text_model.``, which loading strips, as transformers does."""

    def __init__(self, config):
        self.config = config
        self.embeddings = CLIPEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = LayerNorm(config["hidden_size"], config["layer_norm_eps"])

    @classmethod
    def from_pretrained(cls, folder):
        """Build from ``folder/config.json`` and load ``folder/model.safetensors``."""
        model = cls(read_config(folder))
        path = Path(folder) / "model.safetensors"
        # older exports also store the position_ids buffer
        return load_weights(model, path, rename=_strip_prefix, ignore=("embeddings.position_ids",)).eval()

    def execute(self, input_ids):
        """Token ids (batch, tokens), int -> last_hidden_state (batch, tokens, hidden)."""
        if not isinstance(input_ids, jt.Var):
            input_ids = jt.array(np.asarray(input_ids, dtype=np.int32))
        n = input_ids.shape[1]
        # causal: token i sees tokens 0..i. Finite, not -inf: Jittor compiles kernels with
        # -Ofast, which assumes no infinities.
        mask = jt.array(np.triu(np.full((n, n), -1e9, dtype=np.float32), k=1))
        return self.final_layer_norm(self.encoder(self.embeddings(input_ids), mask))


def _strip_prefix(key):
    return key.removeprefix("text_model.")
