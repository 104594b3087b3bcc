"""Best-of-N: sample N, keep the one a reward ranks highest (seed §4.4; docs/equations.md §6).

On a finite space with reference probabilities p(y) and rewards r(y), the Best-of-N policy is known
exactly. Order the outcomes by reward; with F the reward-ordered CDF of p,

    pi_BoN(y) = F(y)^N - F(y-)^N          (all N draws at or below y, minus all strictly below)

where outcomes of equal reward are one block (the draw keeps one of them; split by p within the
block). Its KL to the reference obeys (Beirami et al. 2024)

    KL(pi_BoN || p) <= log N - (N - 1) / N

with equality in the limit where no single outcome has noticeable probability. The tests check the
exact value against the bound and against a Monte-Carlo estimate from :func:`sample_best_of_n`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from minirl.checks import check_finite, check_int

__all__ = ["best_of_n_distribution", "best_of_n_kl", "best_of_n_kl_bound", "sample_best_of_n"]


def _check(p: Tensor, rewards: Tensor, n: int) -> None:
    if p.ndim != 1 or rewards.shape != p.shape:
        raise ValueError(f"p, rewards: must be two vectors of the same length, got {tuple(p.shape)} and "
                         f"{tuple(rewards.shape)}")
    if bool((p < 0).any()) or not math.isclose(float(p.sum()), 1.0, abs_tol=1e-6):
        raise ValueError("p: must be a probability distribution")
    check_finite(rewards, "rewards")
    check_int(n, "n", 1)


def best_of_n_distribution(p: Tensor, rewards: Tensor, n: int) -> Tensor:
    """pi_BoN(y) = F(y)^N - F(y-)^N over the outcomes (ties share their block by p), shape like p."""
    p, rewards = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(rewards, dtype=torch.float64)
    _check(p, rewards, n)
    # BEGIN SOLUTION
    levels, block = torch.unique(rewards, sorted=True, return_inverse=True)  # reward levels, ascending
    mass = torch.zeros(len(levels), dtype=p.dtype).index_add_(0, block, p)  # p of each level
    F_upper = torch.cumsum(mass, 0)  # F(y): P(r <= level)
    F_lower = F_upper - mass  # F(y-): P(r < level)
    level_prob = F_upper ** n - F_lower ** n  # P(the best of N draws has this reward level)
    share = torch.where(mass[block] > 0, p / mass[block], torch.zeros_like(p))
    return level_prob[block] * share
    # END SOLUTION


def best_of_n_kl(p: Tensor, rewards: Tensor, n: int) -> float:
    """KL(pi_BoN || p), exactly."""
    q = best_of_n_distribution(p, rewards, n)
    p = torch.as_tensor(p, dtype=torch.float64)
    keep = q > 0
    return float((q[keep] * (q[keep] / p[keep]).log()).sum())


def best_of_n_kl_bound(n: int) -> float:
    """log N - (N - 1) / N."""
    n = check_int(n, "n", 1)
    return math.log(n) - (n - 1) / n


def sample_best_of_n(p: Tensor, rewards: Tensor, n: int, n_samples: int,
                     generator: torch.Generator | None = None) -> Tensor:
    """Monte-Carlo Best-of-N: ``n_samples`` indices, each the highest-reward of N draws from p (first wins ties)."""
    p, rewards = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(rewards, dtype=torch.float64)
    _check(p, rewards, n)
    n_samples = check_int(n_samples, "n_samples", 1)
    draws = torch.multinomial(p, n_samples * n, replacement=True, generator=generator).view(n_samples, n)  # (M, N)
    best = rewards[draws].argmax(dim=1)  # (M,)
    return draws.gather(1, best[:, None]).squeeze(1)
