"""Counting a learner's mistakes against an expert: survey eq. 1, sampled and exact.

    l(pi) = E_{tau ~ pi} [ sum_{t<T} 1[a_t != a*(s_t)] ]                      (docs/equations.md §2)

The quantity both imitation theorems bound (BC: C + T^2 eps, DAgger: T eps_N). It is measured
*along the learner's own trajectories*: a mistake is an action the expert would not take at a
state the learner itself reached. :func:`count_mistakes` is the Monte-Carlo estimator -- one count
per sampled trajectory, for any world whose expert can label a batch (a tabular expert, a task's
programmatic expert on token contexts); :func:`exact_mistakes` is its oracle on a tabular MDP, from
the learner's exact state distributions (no sampling). :func:`slips` splits the mean count in two: how
often a trajectory goes wrong at all, and what a first mistake costs afterwards (the compounding).
"""

from __future__ import annotations

import numpy as np
import torch

from minirl.data import TrajectoryBatch
from minirl.mdp import TabularMDP, state_distributions
from minirl.policies import CategoricalPolicy, Expert

__all__ = ["count_mistakes", "exact_mistakes", "slips"]


def count_mistakes(batch: TrajectoryBatch, expert: Expert) -> torch.Tensor:
    """sum_t 1[a_t != a*(s_t)] of each trajectory (survey eq. 1 inside the expectation), (B,)."""
    wrong = (batch.actions != expert.label(batch)) & batch.mask  # (B, T)
    return wrong.sum(dim=1).float()


def slips(mistakes: torch.Tensor) -> dict[str, float]:
    """From per-trajectory counts (B,): mistakes = mean count; slip_rate = P(at least one mistake);
    mistakes_after_first = E[count - 1 | at least one] (0 if the learner recovers at once; up to the rest of
    the trajectory if it never does; 0 when nothing slipped)."""
    slipped = mistakes > 0
    return {"mistakes": float(mistakes.mean()), "slip_rate": float(slipped.double().mean()),
            "mistakes_after_first": float((mistakes[slipped] - 1).mean()) if slipped.any() else 0.0}


def exact_mistakes(mdp: TabularMDP, learner: CategoricalPolicy, expert: CategoricalPolicy, horizon: int) -> float:
    """l(pi) = sum_{t<T} sum_s Pr(s_t = s) (1 - pi(a*(s) | s)), from the learner's exact state distributions."""
    states = torch.arange(mdp.n_states)
    with torch.no_grad():
        pi = learner.probs(states).double().numpy()  # (S, A)
        a_star = expert.probs(states).argmax(-1).numpy()  # (S,)
    d = state_distributions(mdp, pi, horizon)  # (T, S)
    return float((d * (1.0 - pi[np.arange(mdp.n_states), a_star])).sum())
