"""Gao et al.'s over-optimisation laws: gold reward as a function of the KL spent (docs/equations.md §8).

Optimise a policy against a *proxy* reward and measure a held-out *gold* reward against
d = sqrt(KL(pi || pi_ref)), relative to the start (R(0) = 0). Gao et al. (2023) found two forms:

    Best-of-N     R(d) = d (alpha - beta d)            (form "bon")
    RL            R(d) = d (alpha - beta log d)        (form "rl")

Both are linear in (alpha, beta): with features c0 = d and c1 = -d^2 (or -d log d, 0 log 0 = 0),
R = alpha c0 + beta c1, so :func:`fit_gao` is one linear least-squares solve; it reports R^2 about the
mean. When beta > 0 the fitted curve turns down, and :func:`fitted_peak` gives where:

    "bon":  dR/dd = alpha - 2 beta d = 0           ->  d* = alpha / (2 beta)
    "rl":   dR/dd = alpha - beta (log d + 1) = 0   ->  d* = exp(alpha / beta - 1)

Shapes: kl and reward are 1-D of the same length (one point per N, or per checkpoint).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

__all__ = ["GAO_FORMS", "GaoFit", "fit_gao", "fitted_peak"]

GAO_FORMS = ("bon", "rl")
"""The two functional forms: Best-of-N and RL."""


def gao_features(d: np.ndarray, form: str) -> np.ndarray:
    """Columns (d, -d^2) for "bon", (d, -d log d) for "rl" (0 log 0 = 0): R = alpha c0 + beta c1, shape (n, 2)."""
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
        return gao_features(d, self.form) @ np.array([self.alpha, self.beta])


def fit_gao(kl: Sequence[float], reward: Sequence[float], form: str = "bon") -> GaoFit:
    """Fit Gao et al.'s form (docs/equations.md §8) by least squares; returns (alpha, beta, R^2, form).

    ``kl`` is KL(pi || pi_ref) >= 0 per point (d = sqrt(kl)); ``reward`` the gold (or proxy) reward
    relative to pi_ref (the forms pass through R(0) = 0: subtract the reference's reward first).
    R^2 = 1 - SS_res / SS_tot about the mean (NaN if the rewards are constant).
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
    X = gao_features(np.sqrt(kl), form)  # (n, 2)
    (alpha, beta), *_ = np.linalg.lstsq(X, reward, rcond=None)
    residual = reward - X @ np.array([alpha, beta])
    total = float(((reward - reward.mean()) ** 2).sum())
    r2 = 1.0 - float((residual ** 2).sum()) / total if total > 0 else float("nan")
    return GaoFit(float(alpha), float(beta), r2, form)


def fitted_peak(fit: GaoFit) -> float:
    """d at which the fitted curve peaks: alpha / (2 beta) ("bon"), exp(alpha / beta - 1) ("rl");
    inf if the fit does not turn down (beta <= 0)."""
    if fit.beta <= 0:
        return math.inf
    if fit.form == "bon":
        return fit.alpha / (2 * fit.beta)
    return math.exp(min(fit.alpha / fit.beta - 1.0, 700.0))
