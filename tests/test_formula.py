"""The spec's formula on its own (../shared/spec/styleid.md, "Injection" and "AdaIN of the start latents"):
the attention processor against a NumPy softmax(T q~ k^T / sqrt(d)) v, and AdaIN and the DDIM sampling
step of the injection loop against numbers worked out by hand.

gamma = 0.3 and T = 2 with content != input and two references: swapping gamma and 1 - gamma,
dropping T, or averaging the references' statistics instead of pooling them gives other numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention

from jstyleid.core.schedule import NoiseSchedule
from jstyleid.core.styleid import adain, inject
from jstyleid.engines.base import CallState, Injection, StyleIDAttnProcessor
from jstyleid.engines.torch import TorchEngine

GAMMA, T = 0.3, 2.0
ROWS, TOKENS, HEADS, HEAD_DIM, REFS = 2, 3, 2, 4, 2
INNER = HEADS * HEAD_DIM
LAYER = "up_blocks.3.attentions.2.transformer_blocks.0.attn1"


def softmax_attention(q, k, v, temperature=1.0):
    """softmax(T q k^T / sqrt(head_dim)) v per head, on (B, tokens, inner) arrays, in float64."""
    def heads(x):
        return x.reshape(x.shape[0], x.shape[1], HEADS, HEAD_DIM).transpose(0, 2, 1, 3)

    scores = temperature * heads(q) @ heads(k).transpose(0, 1, 3, 2) / np.sqrt(HEAD_DIM)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = weights @ heads(v)
    return out.transpose(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], INNER)


def identity_attention():
    """A diffusers self-attention whose to_q, to_k, to_v and to_out are the identity: q = k = v = input."""
    attn = Attention(query_dim=INNER, heads=HEADS, dim_head=HEAD_DIM)
    with torch.no_grad():
        for linear in (attn.to_q, attn.to_k, attn.to_v, attn.to_out[0]):
            linear.weight.copy_(torch.eye(INNER))
            if linear.bias is not None:
                linear.bias.zero_()
    state = CallState()
    attn.set_processor(StyleIDAttnProcessor(LAYER, state, TorchEngine.__new__(TorchEngine)))
    return attn.eval(), state


def run(attn, state, hidden, injection):
    with torch.no_grad(), state.active((), injection):
        return attn(torch.tensor(hidden, dtype=torch.float32)).numpy()


@pytest.fixture
def arrays():
    rng = np.random.default_rng(7)
    return dict(x=rng.normal(size=(ROWS, TOKENS, INNER)),              # the latents being stylized
                content=rng.normal(size=(ROWS, TOKENS, INNER)),        # q_content of the same step
                styles=rng.normal(size=(REFS, TOKENS, INNER)))         # each reference's k = v (identity)


def test_stored_injection_is_softmax_of_temperature_times_blended_query(arrays):
    attn, state = identity_attention()
    x, content, styles = arrays["x"], arrays["content"], arrays["styles"]
    k_style = styles.reshape(1, REFS * TOKENS, INNER)  # the references joined along the token axis
    features = {LAYER: tuple(torch.tensor(a, dtype=torch.float32) for a in (content, k_style, k_style))}
    got = run(attn, state, x, Injection(ROWS, GAMMA, T, features))

    q_tilde = GAMMA * content + (1 - GAMMA) * x
    keys = np.repeat(k_style, ROWS, axis=0)
    expected = softmax_attention(q_tilde, keys, keys, T)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the choices the formula fixes, each giving numbers far from these
    for wrong in (softmax_attention((1 - GAMMA) * content + GAMMA * x, keys, keys, T),
                  softmax_attention(q_tilde, keys, keys, 1.0),
                  softmax_attention(q_tilde, keys[:, :TOKENS], keys[:, :TOKENS], T)):
        assert np.abs(got - wrong).max() > 1e-2


def test_recomputed_injection_uses_the_batch_rows_and_leaves_the_feature_rows_plain(arrays):
    attn, state = identity_attention()
    x, content, styles = arrays["x"], arrays["content"], arrays["styles"]
    batch = np.concatenate([x, content, styles])  # rows: stylized, contents, references
    got = run(attn, state, batch, Injection(ROWS, GAMMA, T))

    keys = np.repeat(styles.reshape(1, REFS * TOKENS, INNER), ROWS, axis=0)
    np.testing.assert_allclose(got[:ROWS], softmax_attention(GAMMA * content + (1 - GAMMA) * x, keys, keys, T),
                               rtol=1e-5, atol=1e-6)
    # the contents and references attend among their own rows as usual (T = 1, own k and v)
    feature_rows = batch[ROWS:]
    np.testing.assert_allclose(got[ROWS:], softmax_attention(feature_rows, feature_rows, feature_rows),
                               rtol=1e-5, atol=1e-6)


def test_without_injection_the_processor_is_plain_attention(arrays):
    attn, state = identity_attention()
    x = arrays["x"]
    np.testing.assert_allclose(run(attn, state, x, None), softmax_attention(x, x, x), rtol=1e-5, atol=1e-6)


def test_adain_pools_the_references_per_channel():
    # channel 0: content 0, 2, 2, 0 (mean 1, std 1); references all 3 and all 7 -> pooled mean 5, std 2
    # channel 1: content 4, 4, 6, 6 (mean 5, std 1); references 0, 2, 0, 2 and 0, 2, 0, 2 -> mean 1, std 1
    content = np.array([[[[0, 2], [2, 0]], [[4, 4], [6, 6]]]], np.float32)
    styles = [np.array([[[3, 3], [3, 3]], [[0, 2], [2, 0]]], np.float32),
              np.array([[[7, 7], [7, 7]], [[2, 0], [0, 2]]], np.float32)]
    low, high = 5 - 2 / (1 + 1e-5), 5 + 2 / (1 + 1e-5)
    expected = np.array([[[[low, high], [high, low]],
                          [[1 - 1 / (1 + 1e-5), 1 - 1 / (1 + 1e-5)], [1 + 1 / (1 + 1e-5), 1 + 1 / (1 + 1e-5)]]]])
    np.testing.assert_allclose(adain(content, styles), expected, rtol=1e-6)


class NumpyEngine:
    """Just enough engine for the injection loop: NumPy arrays, a U-Net that returns a fixed output
    and remembers each call's timestep and Injection."""

    injected_layers = (LAYER,)

    def __init__(self, schedule, out):
        self.schedule, self.out, self.calls = schedule, out, []

    def tensor(self, array):
        return np.asarray(array, np.float64)

    def cat(self, arrays):
        return np.concatenate(list(arrays))

    def unet(self, x, t, cond, record=(), inject=None):
        self.calls.append((t, inject))
        return np.broadcast_to(self.out, x.shape).copy(), {}


class Cache:
    """An inversion cache in memory: the last latent, and q, k, v per step that name the step."""

    def __init__(self, timesteps, last_latent, offset):
        self.timesteps, self.last_latent, self.offset = timesteps, last_latent, offset

    def latent(self, i):
        assert i == len(self.timesteps) - 1, "stored mode reads only the start latent"
        return self.last_latent

    def feature(self, layer, name, i):
        return np.full((1, 2), self.offset + 10 * i + "qkv".index(name))


def test_injection_starts_from_adain_and_takes_the_ddim_steps():
    # abar[1] = 0.64 and abar[501] = 0.36: sqrt coefficients 0.8 / 0.6 and 0.6 / 0.8; after tau_0, abar = 1
    abar = np.full(1000, 0.5, np.float32)
    abar[1], abar[501] = 0.64, 0.36
    schedule = NoiseSchedule(abar, "epsilon", 1.0)
    taus = [1, 501]
    content = np.array([[[0, 2], [2, 0]]], np.float32)    # one channel, mean 1, std 1
    style = np.array([[[3, 3], [7, 7]]], np.float32)      # mean 5, std 2
    engine = NumpyEngine(schedule, out=1.0)               # eps = 1 everywhere
    x = inject(engine, [Cache(taus, content, 0)], [Cache(taus, style, 100), Cache(taus, style, 200)], None,
               gamma=GAMMA, temperature=T)

    start = 5 + 2 * (content - 1) / (1 + 1e-5)             # AdaIN: about 3 and 7
    x0 = (start - 0.8 * 1.0) / 0.6                          # step at tau 501: x0 = (x - sqrt(1-a) eps) / sqrt(a)
    after_first = 0.8 * x0 + 0.6 * 1.0                      # to tau 1: sqrt(0.64) x0 + sqrt(0.36) eps
    final = (after_first - 0.6 * 1.0) / 0.8                 # last step to abar = 1: x = x0
    np.testing.assert_allclose(x, final[None], rtol=1e-5)

    assert [t for t, _ in engine.calls] == [501, 1]         # from tau_{N-1} down to tau_0
    for (t, injection), i in zip(engine.calls, (1, 0)):
        assert (injection.rows, injection.gamma, injection.temperature) == (1, GAMMA, T)
        q, k, v = (a for a in injection.features[LAYER])
        np.testing.assert_array_equal(q, [[[10 * i, 10 * i]]])                       # the content's q of step i
        np.testing.assert_array_equal(k, [[[100 + 10 * i + 1] * 2, [200 + 10 * i + 1] * 2]])  # both refs' k
        np.testing.assert_array_equal(v, [[[100 + 10 * i + 2] * 2, [200 + 10 * i + 2] * 2]])
