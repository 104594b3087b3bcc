"""Scorers: whatever ranks whole trajectories, r(tau) -> one number each (docs/equations.md §5, §8).

Best-of-N, RAFT, the KL-penalised reward of RLHF and the over-optimisation measurements all need the
same thing from a reward: one score per trajectory of a batch, (B,). A scorer is

    a reward model with ``.score(batch) -> (B,)``   (minirl's LinearRewardModel, a transformer head)
    or a callable batch -> (B,)                      (a gold reward, a hand-written rule)

:func:`as_scorer` turns either into one function that returns float64 scores on the CPU, without
gradients, and checks their shape; ``None`` stands for a default the caller names (a task's gold
reward: the oracle scorer). The design keeps a score *outside* the batch: no algorithm reads a gold
reward from ``batch.info``.

:class:`EnsembleScorer` is the over-optimisation mitigation of Coste et al. (2024) (docs/equations.md §8):

    r_ens(tau) = mean_m r_m(tau) - k std_m r_m(tau)       (population std over the M members)

a conservative score that pays less for trajectories the members disagree on. Shapes: member scores
(M, B); the ensemble's score (B,).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from minirl.data import TrajectoryBatch

__all__ = ["Scorer", "as_scorer", "EnsembleScorer"]

Scorer = Callable[[TrajectoryBatch], Tensor]
"""batch -> scores (B,)."""


def as_scorer(scorer: Any, default: Scorer | None = None) -> Scorer:
    """A function batch -> scores (B,) float64 on the CPU from a reward model (``.score``), a callable, or None.

    None means ``default`` (e.g. a task's gold reward, the oracle scorer); None without a default is a
    ValueError. Scores are computed without gradients and must have shape (B,).
    """
    if scorer is None:
        if default is None:
            raise ValueError("scorer: None means the task's gold reward, but no task was given")
        fn = default
    elif hasattr(scorer, "score") and callable(scorer.score):
        fn = scorer.score
    elif callable(scorer):
        fn = scorer
    else:
        raise ValueError(f"scorer: must have .score(batch) -> (B,) or be callable, got {type(scorer).__name__}")

    @torch.no_grad()
    def score(batch: TrajectoryBatch) -> Tensor:
        s = torch.as_tensor(fn(batch)).detach().cpu().double()
        if s.shape != (batch.batch_size,):
            raise ValueError(f"scorer: must return (B,) = ({batch.batch_size},) scores, got {tuple(s.shape)}")
        return s

    return score


class EnsembleScorer:
    """score(tau) = mean_m r_m(tau) - k std_m r_m(tau) over the members (docs/equations.md §8; Coste et al. 2024).

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
        return r.mean(0) - self.k * r.std(0, correction=0)

    __call__ = score
