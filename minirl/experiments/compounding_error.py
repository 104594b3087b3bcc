"""The compounding-error experiment: BC's mistakes grow as T^2, DAgger's as T.

Seed §2.4, eq. 1 and Theorems 2.1 / 2.3 (Ross et al. 2011). We measure

    l(pi) = E_{tau ~ p_pi} sum_{t<T} 1[pi(s_t) != a*_t]                       (survey eq. 1)

-- mistakes against the expert's labels along the learner's *own* rollouts -- for horizons
T from 5 to ~100, on the ``tightrope`` MDP (see :mod:`minirl.envs.designed`): one slip drops
the walker into a pit the expert never visits and cannot be climbed by chance.

Controlling epsilon. In a table, a learner can memorise every state it was trained on, so
its training error would be 0. To study the theorems we fix the error instead: the learner
is a :class:`~minirl.policies.SlipPolicy` -- a softmax table that, by construction, takes a
uniformly random wrong action with probability eps. BC and DAgger both fit that policy by
maximum likelihood, which drives the table to the expert's action on every state in their
data, so both reach the same per-state error eps on their own training distributions
(measured and reported). What differs is *which* states are in the data:
  * BC: expert demonstrations only; in the pit the table is untrained (uniform), so after a
    slip it errs with probability (A - 1)/A at every remaining step:
    l_BC ~ eps T + (A - 1)/A * eps T^2 / 2  ->  exponent ~2 while eps T < 1;
  * DAgger: the learner's own states, expert-labelled, pit included; after a slip it climbs
    out at error eps per step: l_DAgger ~ eps T  ->  exponent 1.

Every l is computed twice: by Monte-Carlo over the learner's rollouts (what eq. 1 says) and
exactly from the learner's state distributions (:func:`minirl.mdp.state_distributions`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.dagger import DAggerConfig, train_dagger
from minirl.data import TrajectoryBatch
from minirl.envs import TabularVectorEnv, tightrope
from minirl.experts import optimal_tabular_expert
from minirl.mistakes import count_mistakes, exact_mistakes  # noqa: F401 (re-exported: the demo's API)
from minirl.policies import CategoricalPolicy, SlipPolicy, TabularPolicy
from minirl.rollout import rollout

__all__ = [
    "CompoundingErrorConfig",
    "CompoundingErrorResult",
    "run_compounding_error",
    "count_mistakes",
    "exact_mistakes",
    "fit_exponent",
]

METHODS = ("bc", "dagger")


@dataclass(frozen=True)
class CompoundingErrorConfig:
    """Settings of the compounding-error experiment."""

    horizons: tuple[int, ...] = (5, 8, 12, 18, 27, 40, 60, 90)
    """Horizons T at which mistakes are measured."""
    epsilon: float = 0.01
    """The learner's per-state error rate (survey Theorems 2.1 / 2.3)."""
    n_demos: int = 50
    """Expert demonstrations for BC (each of length T)."""
    dagger_iterations: int = 6
    """DAgger rounds."""
    dagger_episodes: int = 200
    """Learner episodes labelled per DAgger round."""
    n_eval: int = 2000
    """Learner rollouts per horizon for the Monte-Carlo estimate of l(pi)."""
    n_seeds: int = 5
    """Independent repetitions (demos, DAgger roll-outs, evaluation); error bars are over these."""
    seed: int = 0
    """Base seed; repetition k uses seed + 1000 k."""
    bc: BCConfig = field(default_factory=lambda: BCConfig(n_updates=50, lr=1.0))
    """How both learners fit their data (full-batch Adam on the softmax table)."""
    tightrope: dict[str, Any] = field(default_factory=lambda: dict(length=8, depth=6, n_actions=4))
    """Arguments of :func:`minirl.envs.tightrope`."""
    progress: bool = False
    """Show a progress bar over (seed, horizon)."""

    def __post_init__(self) -> None:
        if not self.horizons or any(int(T) != T or T < 2 for T in self.horizons):
            raise ValueError(f"horizons: must be a non-empty list of integers >= 2, got {self.horizons}")
        if len(self.fit_horizons) < 2:
            raise ValueError("horizons: at least two must satisfy epsilon * T <= 1, the regime the fit uses")
        if not 0.0 < self.epsilon < 0.5:
            raise ValueError(f"epsilon: must be in (0, 0.5), got {self.epsilon}")
        for name in ("n_demos", "dagger_iterations", "dagger_episodes", "n_eval", "n_seeds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")

    @property
    def fit_horizons(self) -> tuple[int, ...]:
        """The horizons inside the theorems' regime eps T <= 1, where the exponents are fitted."""
        return tuple(T for T in self.horizons if self.epsilon * T <= 1.0)


@dataclass
class CompoundingErrorResult:
    """Measurements, indexed [seed, horizon] per method."""

    config: CompoundingErrorConfig
    mistakes: dict[str, np.ndarray]
    """Monte-Carlo l(pi): mean mistakes per rollout, (n_seeds, n_horizons)."""
    mistakes_se: dict[str, np.ndarray]
    """Standard error of each Monte-Carlo mean, (n_seeds, n_horizons)."""
    exact: dict[str, np.ndarray]
    """Exact l(pi) of the same learners from their state distributions, (n_seeds, n_horizons)."""
    epsilon_measured: dict[str, np.ndarray]
    """Per-state error on each learner's own training data, (n_seeds, n_horizons)."""
    exponents: dict[str, np.ndarray]
    """Log-log slope of the Monte-Carlo l(pi) over ``fit_horizons``, one per seed, (n_seeds,)."""
    wall_s: float

    @property
    def horizons(self) -> list[int]:
        return list(self.config.horizons)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict: means over seeds, exponents with their spread."""
        out: dict[str, Any] = {"horizons": self.horizons, "fit_horizons": list(self.config.fit_horizons),
                               "epsilon": self.config.epsilon, "n_seeds": self.config.n_seeds}
        for m in METHODS:
            out[m] = self.mistakes[m].mean(0).round(5).tolist()
            out[f"{m}_std"] = self.mistakes[m].std(0).round(5).tolist()
            out[f"{m}_exact"] = self.exact[m].mean(0).round(5).tolist()
            out[f"{m}_exponent"] = round(float(self.exponents[m].mean()), 4)
            out[f"{m}_exponent_std"] = round(float(self.exponents[m].std()), 4)
            out[f"{m}_exponent_exact"] = round(fit_exponent(self.config.fit_horizons, self._fit_part(self.exact[m].mean(0))), 4)
            out[f"{m}_epsilon_measured"] = round(float(self.epsilon_measured[m].mean()), 5)
        out["wall_s"] = round(self.wall_s, 2)
        return out

    def _fit_part(self, values: np.ndarray) -> np.ndarray:
        keep = [i for i, T in enumerate(self.config.horizons) if T in self.config.fit_horizons]
        return np.asarray(values)[keep]

    def table(self) -> str:
        """A readable plain-text table of the measurements."""
        eps = self.config.epsilon
        lines = [
            f"Compounding error on the tightrope MDP (eps = {eps}, {self.config.n_seeds} seeds; "
            f"mean +- std over seeds; exact = from state distributions)",
            f"{'T':>5} {'eps*T':>6} | {'BC mistakes':>16} {'exact':>8} | {'DAgger mistakes':>16} {'exact':>8} | {'BC/DAgger':>9}",
        ]
        s = self.summary()
        for j, T in enumerate(self.horizons):
            bc, dg = s["bc"][j], s["dagger"][j]
            lines.append(
                f"{T:>5} {eps * T:>6.2f} | {bc:>8.3f} +- {s['bc_std'][j]:<5.3f} {s['bc_exact'][j]:>8.3f} | "
                f"{dg:>8.3f} +- {s['dagger_std'][j]:<5.3f} {s['dagger_exact'][j]:>8.3f} | {bc / max(dg, 1e-12):>9.1f}"
            )
        lines.append(
            f"fitted exponent (log-log, eps*T <= 1): BC {s['bc_exponent']:.3f} +- {s['bc_exponent_std']:.3f} "
            f"(exact {s['bc_exponent_exact']:.3f}), DAgger {s['dagger_exponent']:.3f} +- "
            f"{s['dagger_exponent_std']:.3f} (exact {s['dagger_exponent_exact']:.3f}); theory: 2 and 1"
        )
        lines.append(
            f"measured per-state error on own training data: BC {s['bc_epsilon_measured']:.4f}, "
            f"DAgger {s['dagger_epsilon_measured']:.4f}; wall time {self.wall_s:.1f} s"
        )
        return "\n".join(lines)


def fit_exponent(horizons: Any, values: Any) -> float:
    """Least-squares slope of log(values) against log(horizons)."""
    return float(np.polyfit(np.log(np.asarray(horizons, float)), np.log(np.asarray(values, float)), 1)[0])


def _per_state_error(learner: CategoricalPolicy, data: TrajectoryBatch) -> float:
    """1 - pi(a* | s) averaged over the real steps of the learner's (expert-labelled) training data."""
    with torch.no_grad():
        return float(1.0 - data.masked_mean(learner.log_prob(data).exp()))


def _one_horizon(config: CompoundingErrorConfig, horizon: int, seed: int) -> dict[str, tuple[float, float, float, float]]:
    mdp = tightrope(horizon=horizon, **config.tightrope)
    expert = optimal_tabular_expert(mdp)
    # The learner only ever sees the MDP\R: hide_reward=True (the reward is not needed anyway).
    envs = TabularVectorEnv(mdp, num_envs=max(config.n_demos, config.dagger_episodes), hide_reward=True)
    eval_envs = TabularVectorEnv(mdp, num_envs=config.n_eval, hide_reward=True)

    def collect(policy: Any, n: int, s: int) -> TrajectoryBatch:
        return rollout(envs, policy, n, seed=s)

    def new_learner() -> SlipPolicy:
        return SlipPolicy(TabularPolicy(mdp.n_states, mdp.n_actions), config.epsilon)

    bc = new_learner()
    demos = collect(expert, config.n_demos, seed)
    train_bc(bc, demos, config.bc)

    dagger = new_learner()
    dagger_cfg = DAggerConfig(n_iterations=config.dagger_iterations, episodes_per_iteration=config.dagger_episodes,
                              bc=config.bc, seed=seed + 1)
    dagger_data, _ = train_dagger(dagger, expert, collect, dagger_cfg)

    out = {}
    for name, learner, data in (("bc", bc, demos), ("dagger", dagger, dagger_data)):
        runs = rollout(eval_envs, learner, config.n_eval, seed=seed + 2)
        m = count_mistakes(runs, expert)
        out[name] = (float(m.mean()), float(m.std() / np.sqrt(len(m))),
                     exact_mistakes(mdp, learner, expert, horizon), _per_state_error(learner, data))
    return out


def run_compounding_error(config: CompoundingErrorConfig = CompoundingErrorConfig()) -> CompoundingErrorResult:
    """Run the experiment; see the module docstring. Deterministic given ``config.seed``."""
    start = time.perf_counter()
    shape = (config.n_seeds, len(config.horizons))
    fields = {k: {m: np.zeros(shape) for m in METHODS} for k in ("mistakes", "se", "exact", "eps")}
    jobs = [(k, j, T) for k in range(config.n_seeds) for j, T in enumerate(config.horizons)]
    for k, j, T in tqdm(jobs, desc="compounding error", disable=not config.progress):
        seed = config.seed + 1000 * k
        torch.manual_seed(seed)
        for m, values in _one_horizon(config, T, seed).items():
            for key, v in zip(("mistakes", "se", "exact", "eps"), values):
                fields[key][m][k, j] = v
    fit = [j for j, T in enumerate(config.horizons) if T in config.fit_horizons]
    exponents = {m: np.array([fit_exponent(config.fit_horizons, fields["mistakes"][m][k, fit])
                              for k in range(config.n_seeds)]) for m in METHODS}
    return CompoundingErrorResult(config=config, mistakes=fields["mistakes"], mistakes_se=fields["se"],
                                  exact=fields["exact"], epsilon_measured=fields["eps"], exponents=exponents,
                                  wall_s=time.perf_counter() - start)

