"""Mass-covering vs mode-seeking: what each f does when the policy cannot hold the expert.

Seed §2.4, Table 4; docs/equations.md §4 and §7. The expert's action distribution has two modes; the
policy class is a single (discretised) Gaussian, so no policy matches it and the divergence
decides the compromise:

    FAIRL  forward KL(rho_demo || rho_pi)   penalises missing expert mass   -> spreads over both modes
    AIRL   reverse KL(rho_pi || rho_demo)   penalises mass where the expert has none -> commits to one
    GAIL   Jensen-Shannon                   bounded penalties both ways     -> in between

Each method is trained by the adversarial game itself -- the optimal discriminator of the current
policy, the reward derived from its f, and the exact policy gradient
(:func:`minirl.algos.exact_imitation.train_exact`) -- from the same initial Gaussian, and then
scored by all three divergences. This is the picture the LLM track reuses for SFT (forward KL) vs
alignment from demonstrations (reverse KL).

The MDP is a one-step bandit: a start state whose every action leads to a terminal state, so
rho_pi(start, a) = pi(a). Actions are ``n_actions`` points on [-x_max, x_max]; the grid reaches
well beyond the modes so a very wide Gaussian is not a near-uniform that fits both by truncation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from minirl.algos.exact_imitation import ExactImitationConfig, train_exact
from minirl.divergences import DIVERGENCES, js, kl
from minirl.mdp import TabularMDP
from minirl.policies import CategoricalPolicy

__all__ = ["FDivergenceConfig", "FDivergenceResult", "DiscretisedGaussianPolicy", "bandit_mdp", "bimodal_expert", "run_f_divergence"]

METHODS = ("fairl", "gail", "airl")


@dataclass(frozen=True)
class FDivergenceConfig:
    """Settings of the mode-seeking / mass-covering experiment."""

    modes: tuple[float, float] = (-2.0, 2.0)
    """Centres of the expert's two modes."""
    mode_std: float = 0.5
    """Standard deviation of each mode."""
    weight: float = 0.5
    """Probability of the first mode."""
    n_actions: int = 161
    x_max: float = 8.0
    init_mean: float = 0.5
    """The policy starts as N(init_mean, init_std^2), between the modes and narrow."""
    init_std: float = 0.5
    steps: int = 400
    lr: float = 0.05
    seed: int = 0
    """Unused: the exact game has no randomness (kept so every demo takes a seed)."""
    n_seeds: int = 1
    """Unused, as ``seed``."""
    progress: bool = False

    def __post_init__(self) -> None:
        if self.n_actions < 3:
            raise ValueError(f"n_actions: must be >= 3, got {self.n_actions}")
        if not (self.mode_std > 0 and self.init_std > 0 and self.x_max > 0):
            raise ValueError("mode_std, init_std, x_max: must be > 0")
        if not 0.0 < self.weight < 1.0:
            raise ValueError(f"weight: must be in (0, 1), got {self.weight}")
        if self.steps < 1:
            raise ValueError(f"steps: must be >= 1, got {self.steps}")


class DiscretisedGaussianPolicy(CategoricalPolicy):
    """pi(a) proportional to exp(-(x_a - mu)^2 / (2 sigma^2)) on a grid of actions x_a: one mode only.

    A restricted parameterisation (mean and log-std), the same in every state.
    """

    def __init__(self, grid: Tensor, mean: float, std: float):
        super().__init__()
        self.register_buffer("grid", grid.double())
        self.n_actions = len(grid)
        self.mean = nn.Parameter(torch.tensor(float(mean), dtype=torch.float64))
        self.log_std = nn.Parameter(torch.tensor(math.log(std), dtype=torch.float64))

    def log_probs_all(self, obs: Tensor) -> Tensor:
        logits = -(self.grid - self.mean) ** 2 / (2 * torch.exp(2 * self.log_std))  # (A,)
        return torch.log_softmax(logits, -1).expand(*obs.shape, self.n_actions)  # (..., A)


def bandit_mdp(n_actions: int) -> TabularMDP:
    """Start state 0; every action ends the episode in terminal state 1."""
    P = np.zeros((2, n_actions, 2))
    P[:, :, 1] = 1.0
    return TabularMDP(P=P, R=None, rho0=np.array([1.0, 0.0]), gamma=0.5, terminal=np.array([False, True]))


def bimodal_expert(config: FDivergenceConfig) -> tuple[Tensor, Tensor]:
    """(grid (A,), expert distribution over the grid (A,))."""
    x = torch.linspace(-config.x_max, config.x_max, config.n_actions, dtype=torch.float64)
    (m1, m2), s, w = config.modes, config.mode_std, config.weight
    p = w * torch.exp(-(x - m1) ** 2 / (2 * s * s)) + (1 - w) * torch.exp(-(x - m2) ** 2 / (2 * s * s))
    return x, p / p.sum()


class FDivergenceResult(dict):
    """The dict of :func:`run_f_divergence`, with the CLI's ``table()`` and ``summary()``."""

    def table(self) -> str:
        lines = ["method  divergence minimised                     mean    std  forward KL  reverse KL     JS",
                 "------  ---------------------------------------  -----  -----  ----------  ----------  -----"]
        for m in METHODS:
            r = self[m]
            lines.append(f"{m:>6}  {self['divergences'][m]:<39}  {r['mean']:5.2f}  {r['std']:5.2f}  "
                         f"{r['forward_kl']:10.3f}  {r['reverse_kl']:10.3f}  {r['js']:5.3f}")
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        return {m: {k: self[m][k] for k in ("forward_kl", "reverse_kl", "js", "mean", "std")} for m in METHODS} | {
            "wall_s": self["wall_s"]}


def run_f_divergence(config: FDivergenceConfig = FDivergenceConfig()) -> dict[str, Any]:
    """Train FAIRL, GAIL and AIRL on the bimodal expert; score each by forward KL, reverse KL and JS.

    Returns a dict keyed by method with ``forward_kl`` = KL(expert || pi), ``reverse_kl`` =
    KL(pi || expert), ``js`` (nats), the fitted ``mean`` and ``std``, the learned ``probs`` and the
    ``history`` of its own divergence; plus ``grid``, ``expert`` and ``wall_s``.
    """
    start = time.perf_counter()
    mdp = bandit_mdp(config.n_actions)
    grid, expert = bimodal_expert(config)
    rho_demo = torch.zeros(2, config.n_actions, dtype=torch.float64)
    rho_demo[0] = expert
    out = FDivergenceResult(grid=grid.tolist(), expert=expert.tolist())
    for method in METHODS:
        policy = DiscretisedGaussianPolicy(grid, config.init_mean, config.init_std)
        history = train_exact(mdp, policy, rho_demo, ExactImitationConfig(
            divergence=method, steps=config.steps, lr=config.lr, h_max=1e3))  # exact logits: no clipping needed
        with torch.no_grad():
            pi = policy.log_probs_all(torch.zeros((), dtype=torch.long)).exp()
        out[method] = {
            "forward_kl": float(kl(expert, pi)), "reverse_kl": float(kl(pi, expert)), "js": float(js(expert, pi)),
            "mean": policy.mean.item(), "std": policy.log_std.exp().item(), "probs": pi.tolist(),
            "history": [h[f"divergence/{method}"] for h in history],
        }
    out["divergences"] = {name: d.divergence for name, d in DIVERGENCES.items()}
    out["wall_s"] = time.perf_counter() - start
    return out
