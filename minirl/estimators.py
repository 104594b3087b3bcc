"""Monte-Carlo estimators with their standard errors: means, ratios and the KL between two policies.

Every measured number the library reports is one of these, written against the trajectory batch and
the policy protocol, so it serves a softmax table and a language model alike:

    mean and standard error     x_bar,  se = std(x) / sqrt(n)
    ratio of sums               r = sum(u) / sum(v),  se = std(u - r v) / (mean(v) sqrt(n))   (delta method)
    KL from samples y ~ p       KL(p || q) ≈ mean_y [log p(y) - log q(y)]                      (docs/equations.md §7)

and, for scores r and a reference g (a reward model against a gold reward) of the same trajectories,

    pair accuracy               P(sign(r_c - r_r) = sign(g_c - g_r)) over pairs, a score tie counting 1/2
    correlation                 Pearson corr(r, g)
    within-group slope          sum (g - g_bar_k)(r - r_bar_k) / sum (g - g_bar_k)^2, centred per group k

(docs/equations.md §5: Bradley-Terry identifies r only up to a shift per prompt, hence "within group").

and the three per-token estimators of KL(pi || pi_ref) from one sampled token, with log r = log pi_ref - log pi
(:func:`kl_estimate`, docs/equations.md §11): k1 = -log r, k2 = (log r)^2 / 2, k3 = (r - 1) - log r.

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

__all__ = ["KL_ESTIMATORS", "kl_estimate", "KLEstimate", "mean_se", "ratio_se", "sequence_log_prob", "monte_carlo_kl",
           "pair_accuracy", "correlation", "within_group_slope"]


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


KL_ESTIMATORS = ("k1", "k2", "k3")
"""The per-token estimators of KL(pi || pi_ref) (docs/equations.md §11)."""


def kl_estimate(log_ratio: Tensor, estimator: str = "k1") -> Tensor:
    """k(r) elementwise for log r = log pi_ref(a|s) - log pi(a|s) of tokens a ~ pi (docs/equations.md §11).

    k1 = -log r (unbiased, any sign), k2 = (log r)^2 / 2 (biased, >= 0), k3 = (r - 1) - log r (unbiased,
    >= 0). Note the sign: with r = pi_ref / pi, k1 is log pi - log pi_ref, the usual per-token penalty.
    Differentiable in ``log_ratio`` (what putting the estimator in the loss differentiates).
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator: unknown KL estimator {estimator!r}; valid: {list(KL_ESTIMATORS)}")
    if estimator == "k1":
        return -log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    return torch.expm1(log_ratio) - log_ratio


def pair_accuracy(score_chosen: Tensor, score_rejected: Tensor, gold_chosen: Tensor, gold_rejected: Tensor) -> float:
    """The share of pairs that the scores order as the gold does, a score tie counting 1/2 and pairs tied in
    gold left out (NaN if all are); all four (B,)."""
    informative = gold_chosen != gold_rejected
    agree = torch.sign(score_chosen - score_rejected) * torch.sign(gold_chosen - gold_rejected)  # +1, -1, 0 on a tie
    return float(((agree[informative] + 1) / 2).mean())


def correlation(x: Tensor, y: Tensor) -> float:
    """Pearson correlation of two samples (B,); NaN for fewer than two or a constant one."""
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(torch.corrcoef(torch.stack([x, y]))[0, 1])


def within_group_slope(x: Tensor, y: Tensor, group: Tensor) -> float:
    """Least-squares slope of y on x after centring both within each group (module docstring); ``group`` (B,)
    holds group ids 0..K-1. NaN if x does not vary within any group."""
    def centred(v: Tensor) -> Tensor:
        total = torch.zeros(int(group.max()) + 1, dtype=v.dtype).index_add_(0, group, v)
        count = torch.zeros_like(total).index_add_(0, group, torch.ones_like(v))
        return v - (total / count)[group]

    cx, cy = centred(x), centred(y)
    denominator = float((cx * cx).sum())
    return float((cx * cy).sum()) / denominator if denominator > 0 else float("nan")
