"""DDIM timesteps and the step equations of ../shared/spec/styleid.md, nothing else.

Works on any engine's tensors: only +, -, * with Python floats are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

MIN_STEPS, MAX_STEPS = 2, 999


def timesteps(num_steps: int, num_train_timesteps: int = 1000) -> list[int]:
    """tau_i = i*d + 1 with d = 1000 // N, for i = 0..N-1 (ascending)."""
    if not MIN_STEPS <= num_steps <= MAX_STEPS:
        raise InputError("--ddim-steps", f"{num_steps} is outside {MIN_STEPS}..{MAX_STEPS}")
    d = num_train_timesteps // num_steps
    return [i * d + 1 for i in range(num_steps)]


def img2img_timesteps(taus: list[int], strength: float) -> list[int]:
    """The taus an img2img start runs, as diffusers' img2img get_timesteps keeps them: the lowest
    int(N * strength) of the N ascending taus. Sampling starts from the last one kept."""
    if not 0 < strength <= 1:
        raise InputError("--strength", f"{strength} is outside (0, 1]")
    kept = min(int(len(taus) * strength), len(taus))
    if kept < 1:
        raise InputError("--strength", f"{strength} of {len(taus)} steps leaves no step to run")
    return taus[:kept]


@dataclass(frozen=True)
class NoiseSchedule:
    """abar[t] for t = 0..999 and how the U-Net output is parameterised."""

    alphas_cumprod: np.ndarray  # float32, as diffusers keeps it
    prediction_type: str        # "v_prediction" or "epsilon"
    final_alpha_cumprod: float  # abar used after the last sampling step

    @classmethod
    def from_scheduler_config(cls, config: dict) -> "NoiseSchedule":
        n = config.get("num_train_timesteps", 1000)
        start, end = config.get("beta_start", 0.0001), config.get("beta_end", 0.02)
        kind = config.get("beta_schedule", "linear")
        if kind == "scaled_linear":
            betas = np.linspace(start**0.5, end**0.5, n, dtype=np.float32) ** 2
        elif kind == "linear":
            betas = np.linspace(start, end, n, dtype=np.float32)
        else:
            raise InputError("scheduler_config.json", f"beta_schedule {kind!r} is not supported")
        # float32 cumprod, as diffusers computes it, so steps match DDIMScheduler bit for bit.
        import torch

        abar = torch.cumprod(1.0 - torch.from_numpy(betas), dim=0).numpy()
        prediction = config.get("prediction_type", "epsilon")
        if prediction not in ("epsilon", "v_prediction"):
            raise InputError("scheduler_config.json", f"prediction_type {prediction!r} is not supported")
        final = 1.0 if config.get("set_alpha_to_one", True) else float(abar[0])
        return cls(abar, prediction, final)

    def abar(self, t: int) -> float:
        return float(self.alphas_cumprod[t]) if t >= 0 else self.final_alpha_cumprod

    def coefficients(self, t: int) -> tuple[float, float]:
        """(sqrt(abar[t]), sqrt(1 - abar[t])), rounded through float32 as diffusers computes them."""
        a = np.float32(self.abar(t))
        return float(np.sqrt(a)), float(np.sqrt(np.float32(1) - a))

    def split(self, out, x, t: int):
        """(x0, eps) from the U-Net output `out` for a latent x at noise level t."""
        sqrt_a, sqrt_1ma = self.coefficients(t)
        if self.prediction_type == "v_prediction":
            x0 = sqrt_a * x - sqrt_1ma * out
            eps = sqrt_a * out + sqrt_1ma * x
        else:
            eps = out
            x0 = (x - sqrt_1ma * eps) / sqrt_a
        return x0, eps

    def add_noise(self, x0, noise, t: int):
        """The forward process q(x_t | x_0): sqrt(abar[t]) x0 + sqrt(1 - abar[t]) noise (DDIMScheduler.add_noise)."""
        sqrt_a, sqrt_1ma = self.coefficients(t)
        return sqrt_a * x0 + sqrt_1ma * noise

    def move(self, out, x, t_from: int, t_to: int):
        """DDIM (eta = 0) from level t_from to t_to: x' = sqrt(abar[t_to]) x0 + sqrt(1-abar[t_to]) eps.

        t_to > t_from is an inversion step (DDIMInverseScheduler.step(out, t_to, x));
        t_to < t_from a sampling step (DDIMScheduler.step(out, t_from, x)); t_to < 0 means final_alpha_cumprod.
        """
        x0, eps = self.split(out, x, t_from)
        sqrt_a, sqrt_1ma = self.coefficients(t_to)
        return sqrt_a * x0 + sqrt_1ma * eps
