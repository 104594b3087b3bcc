"""Reward over-optimisation: Best-of-N against a proxy, measured with the gold reward (seed §4.5; docs/equations.md §8).

Gao et al. (2023) optimise a policy against a *proxy* reward model and watch a held-out *gold*
reward. With d = sqrt(KL(pi || pi_ref)) and R measured relative to pi_ref (R(0) = 0):

    Best-of-N     R_gold(d) ≈ d (alpha - beta d)            (form "bon")
    RL            R_gold(d) ≈ d (alpha - beta log d)        (form "rl")

The proxy keeps rising with d; the gold reward peaks and falls. :func:`fit_gao` fits either form
by linear least squares (both are linear in (alpha, beta)) and reports R^2.

:func:`best_of_n_curve` measures the Best-of-N curve from one pool of M >= N_max samples per
prompt (Nakano et al. 2021; Gao et al. 2023, appendix): sort the pool by the proxy (ascending,
rank i = 1..M). A uniformly random N-subset of an i.i.d. pool is N i.i.d. draws, and its best
element is the rank-i sample with probability

    w_i(N) = C(i - 1, N - 1) / C(M, N),

so sum_i w_i(N) g_(i) is an unbiased estimate of E_{pi_BoN(N)}[g] for any g (gold or proxy),
using every subset of the pool at once instead of M / N disjoint ones (:func:`pool_best_of_n`, for
any values of the pool's samples ranked by any scores). The KL of each N is the
analytic log N - (N - 1)/N (its bound, tight when no response is likely; docs/equations.md §6). On
an instance small enough to enumerate, :func:`llmtrack.alignment.best_of_n.exact_best_of_n`
gives the exact KL and rewards instead.

Mitigation (seed §4.5): :class:`EnsembleScorer` scores with the members' mean minus k standard
deviations, a conservative reward that penalises responses the members disagree on
(Coste et al. 2024).

The proxies in the tests and demos are minirl's :class:`~minirl.algos.reward_model.LinearRewardModel`
on :func:`bag_of_tokens` features, trained on a few noisy preference pairs: the gold reward
depends on bigrams ("not" negates) and length, which a bag of tokens cannot represent.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor

from minirl.algos.best_of_n import best_of_n_kl_bound
from minirl.algos.reward_model import LinearRewardModel, RewardModelConfig, train_reward_model
from minirl.data import Preferences, TrajectoryBatch
from minirl.policies import Policy
from llmtrack.alignment.best_of_n import _check_n, as_scorer, sample_pool
from llmtrack.tasks.base import Task, as_generator, check_count

__all__ = ["GaoFit", "fit_gao", "GAO_FORMS", "pool_best_of_n_weights", "pool_best_of_n", "best_of_n_curve",
           "EnsembleScorer", "bag_of_tokens", "bag_of_tokens_proxy"]

GAO_FORMS = ("bon", "rl")


# -- Gao et al.'s functional forms ---------------------------------------------------------------------

def _gao_features(d: np.ndarray, form: str) -> np.ndarray:
    """Columns (d, -d^2) for "bon", (d, -d log d) for "rl" (0 log 0 = 0): R = alpha c0 + beta c1."""
    if form == "bon":
        return np.stack([d, -d * d], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_log_d = np.where(d > 0, d * np.log(d), 0.0)
    return np.stack([d, -d_log_d], axis=1)


class GaoFit(NamedTuple):
    """A least-squares fit of docs/equations.md §8: R(d) = d (alpha - beta d) ("bon") or d (alpha - beta log d) ("rl")."""

    alpha: float
    beta: float
    r2: float
    form: str

    def predict(self, kl) -> np.ndarray:
        """R at KL values ``kl`` (d = sqrt(kl))."""
        d = np.sqrt(np.asarray(kl, dtype=np.float64))
        return _gao_features(d, self.form) @ np.array([self.alpha, self.beta])


def fit_gao(kl: Sequence[float], reward: Sequence[float], form: str = "bon") -> GaoFit:
    """Fit Gao et al.'s form (docs/equations.md §8) by least squares; returns (alpha, beta, R^2, form).

    ``kl`` is KL(pi || pi_ref) >= 0 per point (d = sqrt(kl)); ``reward`` the gold (or proxy) reward
    relative to pi_ref (the forms pass through R(0) = 0: subtract the reference's reward first).
    R^2 = 1 - SS_res / SS_tot about the mean.
    """
    if form not in GAO_FORMS:
        raise ValueError(f"form: must be one of {GAO_FORMS}, got {form!r}")
    kl, reward = np.asarray(kl, dtype=np.float64), np.asarray(reward, dtype=np.float64)
    if kl.ndim != 1 or reward.shape != kl.shape or len(kl) < 3:
        raise ValueError(f"kl, reward: need two vectors of the same length >= 3, got {kl.shape} and {reward.shape}")
    if not (np.all(np.isfinite(kl)) and np.all(kl >= 0)):
        raise ValueError("kl: every value must be finite and >= 0")
    if not np.all(np.isfinite(reward)):
        raise ValueError("reward: every value must be finite")
    X = _gao_features(np.sqrt(kl), form)  # (n, 2)
    # BEGIN SOLUTION
    (alpha, beta), *_ = np.linalg.lstsq(X, reward, rcond=None)
    residual = reward - X @ np.array([alpha, beta])
    # END SOLUTION
    total = float(((reward - reward.mean()) ** 2).sum())
    r2 = 1.0 - float((residual ** 2).sum()) / total if total > 0 else float("nan")
    return GaoFit(float(alpha), float(beta), r2, form)


# -- the Best-of-N curve from one pool ------------------------------------------------------------------

def pool_best_of_n_weights(pool_size: int, n: int) -> Tensor:
    """w_i(N) = C(i-1, N-1) / C(M, N) for ascending ranks i = 1..M: the probability that the rank-i
    sample is the best of a uniformly random N-subset of the pool (module docstring), float64 (M,)."""
    M, n = check_count(pool_size, "pool_size"), _check_n(n)
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
    if isinstance(ns, (int, np.integer)) or len(ns) == 0:
        raise ValueError(f"ns: must be a non-empty sequence of integers >= 1, got {ns!r}")
    ns = sorted({_check_n(n, "ns") for n in ns})
    X, M = scores.shape
    if ns[-1] > M:
        raise ValueError(f"ns: every N must be <= the pool's {M} samples per prompt, got {ns[-1]}")
    order = scores.double().argsort(dim=1, stable=True)  # ascending score
    ranked = {name: v.double().gather(1, order) for name, v in values.items()}  # (X, M) each
    se = lambda x: float(x.std() / math.sqrt(len(x)))  # noqa: E731
    rows = []
    for n in ns:
        w = pool_best_of_n_weights(M, n)  # (M,)
        kl = best_of_n_kl_bound(n)
        row = {"n": n, "kl": kl, "d": math.sqrt(kl)}
        for name, v in ranked.items():
            est = v @ w  # (X,) per-prompt estimates
            gain = est - v.mean(1)
            row.update({name: float(est.mean()), f"{name}_se": se(est), f"{name}_gain": float(gain.mean()),
                        f"{name}_gain_se": se(gain)})
        rows.append(row)
    return rows


def best_of_n_curve(policy: Policy, task: Task, proxy: Any, ns: Sequence[int], n_prompts: int = 32,
                    pool_size: int | None = None, seed: int = 0) -> list[dict[str, float]]:
    """Best-of-N against ``proxy``, watched with the gold reward, for each N in ``ns`` (docs/equations.md §8).

    One pool of ``pool_size`` (default max(ns)) samples of ``policy`` for each of ``n_prompts``
    prompts; every N is estimated from the same pool with the unbiased weights of
    :func:`pool_best_of_n_weights` (:func:`pool_best_of_n`). Standard errors are over prompts.

    Rows {n, kl, d, proxy, proxy_se, proxy_gain, proxy_gain_se, gold, gold_se, gold_gain, gold_gain_se}:
    kl = log N - (N-1)/N, d = sqrt(kl), *_gain = the estimate minus the pool mean (the N = 1 value, i.e.
    the reward relative to pi_ref that :func:`fit_gao` wants; paired per prompt, so less noisy).
    """
    if isinstance(ns, (int, np.integer)) or len(ns) == 0:
        raise ValueError(f"ns: must be a non-empty sequence of integers >= 1, got {ns!r}")
    ns = sorted({_check_n(n, "ns") for n in ns})
    n_prompts = check_count(n_prompts, "n_prompts", minimum=2)
    M = ns[-1] if pool_size is None else check_count(pool_size, "pool_size")
    if M < ns[-1]:
        raise ValueError(f"pool_size: must be >= max(ns) = {ns[-1]}, got {M}")
    score = as_scorer(proxy, task)
    g = as_generator(seed)
    pool = sample_pool(policy, task.sample_prompts(n_prompts, g), M, task.max_new_tokens, g)
    s, gold = score(pool).view(n_prompts, M), task.gold_reward(pool).double().view(n_prompts, M)  # (X, M)
    return pool_best_of_n(s, {"proxy": s, "gold": gold}, ns)


# -- the ensemble mitigation --------------------------------------------------------------------------

class EnsembleScorer:
    """score(y) = mean_m r_m(y) - k std_m r_m(y) over the members (seed §4.5; Coste et al. 2024).

    Members are reward models (``.score(batch) -> (B,)``) or callables. std is the population
    standard deviation over members (0 for one member); k = 0 is the plain ensemble mean.
    """

    def __init__(self, models: Sequence[Any], k: float = 1.0):
        if isinstance(models, (str, bytes)) or not isinstance(models, Sequence) or len(models) == 0:
            raise ValueError("models: need a non-empty sequence of reward models")
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
            raise ValueError(f"k: must be a finite number >= 0, got {k!r}")
        self.members = [as_scorer(m) for m in models]  # refuses a member that cannot score
        self.k = float(k)

    def member_scores(self, batch: TrajectoryBatch) -> Tensor:
        """Every member's scores, (M, B), float64."""
        return torch.stack([m(batch) for m in self.members])

    def score(self, batch: TrajectoryBatch) -> Tensor:
        """mean - k std over members, (B,)."""
        r = self.member_scores(batch)  # (M, B)
        # BEGIN SOLUTION
        return r.mean(0) - self.k * r.std(0, correction=0)
        # END SOLUTION

    __call__ = score


# -- a deliberately simple proxy ----------------------------------------------------------------------

def bag_of_tokens(vocab_size: int):
    """phi(batch) = counts of each token id in the response (real steps only), (B, V) float32."""
    V = check_count(vocab_size, "vocab_size")

    def features(batch: TrajectoryBatch) -> Tensor:
        one_hot = torch.nn.functional.one_hot(batch.actions.long().clamp(0, V - 1), V)  # (B, T, V)
        return (one_hot * batch.mask[..., None]).sum(1).float()

    return features


def bag_of_tokens_proxy(task: Task, prefs: Preferences, config: RewardModelConfig = RewardModelConfig(),
                        bootstrap: int | None = None) -> LinearRewardModel:
    """A proxy reward r(y) = w . counts(y) (docs/equations.md §5) fitted to ``prefs`` with minirl's trainer.

    ``bootstrap`` (a seed) resamples the pairs with replacement first: members of an ensemble that
    see different data (a linear model from w = 0 with full-batch Adam is otherwise deterministic).
    """
    if not isinstance(prefs, Preferences):
        raise ValueError(f"prefs: must be minirl Preferences, got {type(prefs).__name__}")
    if bootstrap is not None:
        g = as_generator(bootstrap)
        idx = torch.randint(len(prefs), (len(prefs),), generator=g)
        prefs = Preferences(chosen=prefs.chosen[idx], rejected=prefs.rejected[idx])
    model = LinearRewardModel(bag_of_tokens(task.vocab_size), task.vocab_size)
    train_reward_model(model, prefs, config)
    return model
