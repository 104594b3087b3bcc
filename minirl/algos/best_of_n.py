"""Best-of-N: sample N, keep the one a reward ranks highest (survey §4.4; docs/equations.md §6).

On a finite space with reference probabilities p(y) and rewards r(y), the Best-of-N policy is known
exactly. Order the outcomes by reward; with F the reward-ordered CDF of p,

    pi_BoN(y) = F(y)^N - F(y-)^N          (all N draws at or below y, minus all strictly below)

where outcomes of equal reward are one block (the draw keeps one of them; split by p within the
block). Its KL to the reference obeys (Beirami et al. 2024)

    KL(pi_BoN || p) <= log N - (N - 1) / N

with equality in the limit where no single outcome has noticeable probability. The tests check the
exact value against the bound and against a Monte-Carlo estimate from :func:`sample_best_of_n`.
:func:`best_of_n_mass` is the one place F^N - F_-^N is computed: an estimator that knows F(y-) only
from a pool of samples (a language model's responses) calls it too.

From samples. :func:`select_best` keeps the best of each consecutive group of N rows of a pool (first
wins ties). To estimate E_{pi_BoN(N)}[v] for every N <= M from *one* pool of M >= N samples per
prompt (Nakano et al. 2021; Gao et al. 2023, appendix; docs/equations.md §8): sort the pool by score,
rank i = 1..M ascending. A uniformly random N-subset of an i.i.d. pool is N i.i.d. draws, and its best
element is the rank-i sample with probability

    w_i(N) = C(i - 1, N - 1) / C(M, N),

so sum_i w_i(N) v_(i) is an unbiased estimate of E_{pi_BoN(N)}[v] for any v (:func:`pool_best_of_n_weights`,
:func:`pool_best_of_n`), using every subset of the pool at once instead of M / N disjoint ones.
:func:`best_of_first_n` is the plain estimator: the value of the top-scoring of each prompt's first N.
Shapes: scores and values (X, M) -- X prompts, M samples each.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from minirl.checks import check_finite, check_int
from minirl.estimators import mean_se

__all__ = ["best_of_n_mass", "best_of_n_distribution", "best_of_n_kl", "best_of_n_kl_bound", "sample_best_of_n",
           "select_best", "best_of_first_n", "pool_best_of_n_weights", "pool_best_of_n", "check_ns"]


def _check(p: Tensor, rewards: Tensor, n: int) -> None:
    if p.ndim != 1 or rewards.shape != p.shape:
        raise ValueError(f"p, rewards: must be two vectors of the same length, got {tuple(p.shape)} and "
                         f"{tuple(rewards.shape)}")
    if bool((p < 0).any()) or not math.isclose(float(p.sum()), 1.0, abs_tol=1e-6):
        raise ValueError("p: must be a probability distribution")
    check_finite(rewards, "rewards")
    check_int(n, "n", 1)


def best_of_n_mass(F_upper: Tensor, F_lower: Tensor, n: int) -> Tensor:
    """P(the best of N draws lands in a block) = F(y)^N - F(y-)^N, from the CDF at and below the block."""
    # BEGIN SOLUTION
    return F_upper ** n - F_lower ** n  # all N draws at or below the block, minus all strictly below
    # END SOLUTION


def best_of_n_distribution(p: Tensor, rewards: Tensor, n: int) -> Tensor:
    """pi_BoN(y) = F(y)^N - F(y-)^N over the outcomes (ties share their block by p), shape like p."""
    p, rewards = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(rewards, dtype=torch.float64)
    _check(p, rewards, n)
    # BEGIN SOLUTION
    levels, block = torch.unique(rewards, sorted=True, return_inverse=True)  # reward levels, ascending
    mass = torch.zeros(len(levels), dtype=p.dtype).index_add_(0, block, p)  # p of each level
    F_upper = torch.cumsum(mass, 0)  # F(y): P(r <= level)
    F_lower = F_upper - mass  # F(y-): P(r < level)
    level_prob = best_of_n_mass(F_upper, F_lower, n)  # P(the best of N draws has this reward level)
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


# -- from samples ---------------------------------------------------------------------------------------

def select_best(scores: Tensor, n: int) -> Tensor:
    """Row index of the best of each consecutive group of N scores (first wins ties), (B,) for 1-D scores (B * N,)."""
    n = check_int(n, "n", 1)
    if scores.ndim != 1 or len(scores) % n:
        raise ValueError(f"scores: need one score per pool row in groups of n = {n}, got {tuple(scores.shape)}")
    best = scores.view(-1, n).argmax(1)  # (B,)
    return torch.arange(0, len(scores), n) + best


def best_of_first_n(scores: Tensor, values: Tensor, n: int) -> float:
    """Mean over prompts (rows) of the value of the candidate with the highest score among the first n of
    each row (first wins ties); scores and values (X, M), n <= M."""
    n = check_int(n, "n", 1)
    if scores.ndim != 2 or values.shape != scores.shape or n > scores.shape[1]:
        raise ValueError(f"scores, values: need two (X, M) tensors with M >= n = {n}, got {tuple(scores.shape)} "
                         f"and {tuple(values.shape)}")
    pick = scores[:, :n].argmax(1, keepdim=True)  # (X, 1)
    return float(values[:, :n].gather(1, pick).mean())


def pool_best_of_n_weights(pool_size: int, n: int) -> Tensor:
    """w_i(N) = C(i-1, N-1) / C(M, N) for ascending ranks i = 1..M: the probability that the rank-i
    sample is the best of a uniformly random N-subset of the pool (module docstring), float64 (M,)."""
    M, n = check_int(pool_size, "pool_size", 1), check_int(n, "n", 1)
    if n > M:
        raise ValueError(f"n: must be <= pool_size = {M}, got {n}")
    i = torch.arange(1, M + 1, dtype=torch.float64)
    # BEGIN SOLUTION
    def log_choose(a, b) -> Tensor:  # log C(a, b)
        a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
        return torch.lgamma(a + 1) - torch.lgamma(b + 1) - torch.lgamma(a - b + 1)

    log_w = log_choose(i - 1, n - 1) - log_choose(M, n)  # (M,)
    return torch.where(i >= n, log_w.exp(), torch.zeros_like(i))
    # END SOLUTION


def check_ns(ns, field: str = "ns") -> list[int]:
    """A non-empty sequence of integers >= 1 as a sorted list without repeats."""
    if isinstance(ns, (int, np.integer)) or not isinstance(ns, Sequence) or len(ns) == 0:
        raise ValueError(f"{field}: must be a non-empty sequence of integers >= 1, got {ns!r}")
    return sorted({check_int(n, field, 1) for n in ns})


def pool_best_of_n(scores: Tensor, values: Mapping[str, Tensor], ns: Sequence[int]) -> list[dict[str, float]]:
    """Best-of-N estimates from one pool (module docstring): ``scores`` (X, M) rank each prompt's M samples,
    ``values`` name -> (X, M) are what is estimated (e.g. the proxy and gold rewards of the same samples).

    One row per N in ``ns`` (N <= M): {n, kl, d} with kl = log N - (N - 1)/N and d = sqrt(kl), and for
    each value v: v (the mean over prompts of sum_i w_i(N) v_(i)), v_se, v_gain (minus each prompt's pool
    mean, i.e. relative to the N = 1 value; paired per prompt, so less noisy) and v_gain_se; standard
    errors over the X prompts. Ties in score keep pool order.
    """
    if scores.ndim != 2 or scores.shape[0] < 2:
        raise ValueError(f"scores: need (X, M) scores for X >= 2 prompts, got {tuple(scores.shape)}")
    for name, v in values.items():
        if v.shape != scores.shape:
            raise ValueError(f"values: {name!r} has shape {tuple(v.shape)}, scores {tuple(scores.shape)}")
    ns = check_ns(ns)
    X, M = scores.shape
    if ns[-1] > M:
        raise ValueError(f"ns: every N must be <= the pool's {M} samples per prompt, got {ns[-1]}")
    order = scores.double().argsort(dim=1, stable=True)  # ascending score
    ranked = {name: v.double().gather(1, order) for name, v in values.items()}  # (X, M) each
    rows = []
    for n in ns:
        w = pool_best_of_n_weights(M, n)  # (M,)
        kl = best_of_n_kl_bound(n)
        row = {"n": n, "kl": kl, "d": math.sqrt(kl)}
        for name, v in ranked.items():
            est = v @ w  # (X,) per-prompt estimates
            (mean, se), (gain, gain_se) = mean_se(est), mean_se(est - v.mean(1))
            row.update({name: mean, f"{name}_se": se, f"{name}_gain": gain, f"{name}_gain_se": gain_se})
        rows.append(row)
    return rows
