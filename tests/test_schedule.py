"""The DDIM equations of the spec against diffusers' own schedulers."""

from __future__ import annotations

import json

import pytest
import torch

from jstyleid.errors import InputError
from jstyleid.core.schedule import NoiseSchedule, timesteps


def test_timesteps_follow_spec():
    assert timesteps(50)[:3] == [1, 21, 41] and timesteps(50)[-1] == 981
    assert timesteps(3) == [1, 334, 667]
    for bad in (1, 1000):
        with pytest.raises(InputError):
            timesteps(bad)


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
@pytest.mark.parametrize("steps", [50, 7])
def test_steps_equal_diffusers(tiny_model, prediction, steps):
    from diffusers import DDIMInverseScheduler, DDIMScheduler

    config = json.loads((tiny_model / "scheduler" / "scheduler_config.json").read_text())
    config.update(prediction_type=prediction, clip_sample=False)
    schedule = NoiseSchedule.from_scheduler_config(config)
    forward, inverse = DDIMScheduler.from_config(config), DDIMInverseScheduler.from_config(config)
    forward.set_timesteps(steps)
    inverse.set_timesteps(steps)
    taus = timesteps(steps)
    assert forward.timesteps.tolist() == taus[::-1]
    generator = torch.Generator().manual_seed(0)
    for i, tau in enumerate(taus):
        x = torch.randn(2, 4, 8, 8, generator=generator)
        out = torch.randn(2, 4, 8, 8, generator=generator)
        if i < steps - 1:  # inversion: x_i at tau_i -> tau_{i+1}
            ours = schedule.move(out, x, tau, taus[i + 1])
            theirs = inverse.step(out, taus[i + 1], x).prev_sample
            torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)
        # sampling: x at tau_i -> tau_{i-1} (final_alpha_cumprod after tau_0)
        ours = schedule.move(out, x, tau, taus[i - 1] if i > 0 else -1)
        theirs = forward.step(out, tau, x, eta=0.0).prev_sample
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


def test_final_alpha_is_abar0_without_set_alpha_to_one(tiny_model):
    config = json.loads((tiny_model / "scheduler" / "scheduler_config.json").read_text())
    schedule = NoiseSchedule.from_scheduler_config(config)
    assert config["set_alpha_to_one"] is False
    assert schedule.abar(-1) == pytest.approx(schedule.alphas_cumprod[0])
