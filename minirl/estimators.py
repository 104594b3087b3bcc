"""Monte-Carlo estimators with their standard errors: means, ratios and the KL between two policies.

Every measured number the library reports is one of these, written against the trajectory batch and
the policy protocol, so it serves a softmax table and a language model alike:

    mean and standard error     x_bar,  se = std(x) / sqrt(n)
    ratio of sums               r = sum(u) / sum(v),  se = std(u - r v) / (mean(v) sqrt(n))   (delta method)
    KL from samples y ~ p       KL(p || q) ≈ mean_y [log p(y) - log q(y)]                      (docs/equations.md §7)

where log p(y) is a whole trajectory's log-probability, sum_t log pi(a_t | s_t) over its real steps
(:func:`sequence_log_prob`, float64). The KL estimate has one rule a naive mean gets wrong: if q gives
a sampled trajectory probability 0 (a deterministic expert, a sparse language), KL(p || q) is +inf --
not the mean of the finite terms -- and :class:`KLEstimate` says on what fraction of samples that
happened (``off_support``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from minirl.data import TrajectoryBatch
from minirl.policies import Policy

__all__ = ["KLEstimate", "mean_se", "ratio_se", "sequence_log_prob", "monte_carlo_kl"]


@dataclass(frozen=True)
class KLEstimate:
    """A Monte-Carlo KL estimate: the mean of per-trajectory log-ratios, its standard error, and the fraction
    of samples on which the second policy's probability was 0 (then value = se = inf)."""

    value: float
    se: float
    off_support: float
    n: int


def mean_se(x: Tensor) -> tuple[float, float]:
    """(mean, standard error of the mean) of a 1-D sample, in float64; the error is NaN for one sample."""
    x = x.double()
    return float(x.mean()), float(x.std() / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def ratio_se(numer: Tensor, denom: Tensor) -> tuple[float, float]:
    """sum(numer) / sum(denom) over trajectories and its delta-method standard error (e.g. a per-token rate
    from per-trajectory counts and lengths)."""
    numer, denom = numer.double(), denom.double()
    r = float(numer.sum() / denom.sum())
    n = len(numer)
    se = float((numer - r * denom).std() / (denom.mean() * math.sqrt(n))) if n > 1 else float("nan")
    return r, se


@torch.no_grad()
def sequence_log_prob(policy: Policy, batch: TrajectoryBatch) -> Tensor:
    """log p(tau) = sum_t log pi(a_t | s_t) of each trajectory, (B,), float64 on the CPU (for estimates: no
    graph; :func:`minirl.algos.dpo.sequence_log_prob` is the trainable one)."""
    return batch.masked_sum(policy.log_prob(batch).cpu().double())


def monte_carlo_kl(logp_sampler: Tensor, logp_other: Tensor) -> KLEstimate:
    """KL(p || q) from trajectories sampled from p, given log p and log q of each, both (B,) (module docstring)."""
    # BEGIN SOLUTION
    off = ~torch.isfinite(logp_other)  # q gave this sample probability 0: the KL is infinite
    if off.any():
        return KLEstimate(math.inf, math.inf, float(off.double().mean()), len(off))
    value, se = mean_se(logp_sampler - logp_other)
    return KLEstimate(value, se, 0.0, len(off))
    # END SOLUTION
