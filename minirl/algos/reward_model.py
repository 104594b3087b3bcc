"""Reward models from preferences: Bradley-Terry and the classification objective (survey §4.1; docs/equations.md §5).

A reward model scores whole trajectories, ``score(batch) -> (B,)``. From pairs tau+ > tau-:

    Bradley-Terry    P(tau+ > tau-) = sigma(r(tau+) - r(tau-));   L_BT = -E[p log sigma(D) + (1-p) log sigma(-D)]
    classification   tau+ is label 1, tau- label 0, each on its own: L = -E[log sigma(r(tau+)) + log sigma(-r(tau-))]

p is the label's probability (1 for hard labels). BT sees only differences, so r is identified up
to a constant; the classification objective scores each response on an absolute scale and is
order-consistent (Sun et al. 2024b), which is what makes it more robust to label noise.

Models here: :class:`LinearRewardModel` (r = w . phi(tau) on given features, e.g. frozen
embeddings) and :class:`TabularRewardModel` (r(tau) = sum_t R[s_t, a_t], a learned reward table).
A transformer with a scalar head belongs to llmtrack and plugs in through the same ``score``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minirl.algos.minibatch import minibatch_training
from minirl.checks import check_int, check_minibatch_training
from minirl.data import Preferences, TrajectoryBatch

__all__ = ["bradley_terry_loss", "classification_loss", "LinearRewardModel", "TabularRewardModel",
           "RewardModelConfig", "train_reward_model", "OBJECTIVES"]


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor, label: Tensor | None = None) -> Tensor:
    """-E[p log sigma(r+ - r-) + (1 - p) log sigma(r- - r+)] over B pairs; p = ``label`` (None = 1)."""
    # BEGIN SOLUTION
    d = r_chosen - r_rejected
    p = torch.ones_like(d) if label is None else label.to(d.dtype)
    return -(p * F.logsigmoid(d) + (1 - p) * F.logsigmoid(-d)).mean()  # docs/equations.md §5
    # END SOLUTION


def classification_loss(r_chosen: Tensor, r_rejected: Tensor, label: Tensor | None = None) -> Tensor:
    """Binary cross-entropy with tau+ as class 1 and tau- as class 0 (soft labels: p and 1 - p)."""
    # BEGIN SOLUTION
    p = torch.ones_like(r_chosen) if label is None else label.to(r_chosen.dtype)
    loss_chosen = -(p * F.logsigmoid(r_chosen) + (1 - p) * F.logsigmoid(-r_chosen))
    loss_rejected = -((1 - p) * F.logsigmoid(r_rejected) + p * F.logsigmoid(-r_rejected))
    return (loss_chosen + loss_rejected).mean() / 2  # docs/equations.md §5, classification
    # END SOLUTION


OBJECTIVES: dict[str, Callable[[Tensor, Tensor, Tensor | None], Tensor]] = {
    "bt": bradley_terry_loss, "classification": classification_loss}


class LinearRewardModel(nn.Module):
    """r(tau) = w . phi(tau), with phi a fixed feature map ``features(batch) -> (B, d)``."""

    def __init__(self, features: Callable[[TrajectoryBatch], Tensor], dim: int):
        super().__init__()
        if not callable(features):
            raise ValueError(f"features: must be a function batch -> (B, d), got {type(features).__name__}")
        dim = check_int(dim, "dim", 1)
        self.features = features
        self.w = nn.Parameter(torch.zeros(dim))

    def score(self, batch: TrajectoryBatch) -> Tensor:
        phi = self.features(batch)
        if phi.shape != (batch.batch_size, len(self.w)):
            raise ValueError(f"features: must return (B, d) = ({batch.batch_size}, {len(self.w)}), "
                             f"got {tuple(phi.shape)}")
        return phi.to(self.w.dtype) @ self.w  # (B,)


class TabularRewardModel(nn.Module):
    """r(tau) = sum_t R[s_t, a_t] over the real steps: a reward table learned from trajectory preferences."""

    def __init__(self, n_states: int, n_actions: int):
        super().__init__()
        self.n_states, self.n_actions = check_int(n_states, "n_states", 1), check_int(n_actions, "n_actions", 1)
        self.R = nn.Parameter(torch.zeros(n_states, n_actions))

    def score(self, batch: TrajectoryBatch) -> Tensor:
        if batch.obs.shape != batch.mask.shape:
            raise ValueError(f"obs: a reward table needs state ids of shape (B, T) = {tuple(batch.mask.shape)}, "
                             f"got {tuple(batch.obs.shape)}")
        # ids out of range on a real step are an error, not a reason to score a neighbouring cell
        for name, ids, n in (("obs", batch.obs, self.n_states), ("actions", batch.actions, self.n_actions)):
            if ids.is_floating_point():
                raise ValueError(f"{name}: a reward table needs integer ids, got dtype {ids.dtype}")
            real = ids[batch.mask]
            if real.numel() and (real.min() < 0 or real.max() >= n):
                raise ValueError(f"{name}: ids must lie in [0, {n}), got range [{int(real.min())}, {int(real.max())}]")
        obs = torch.where(batch.mask, batch.obs.long(), 0)  # padding may hold anything; it is masked out
        actions = torch.where(batch.mask, batch.actions.long(), 0)
        return batch.masked_sum(self.R[obs, actions])  # (B, T) -> (B,)


@dataclass(frozen=True)
class RewardModelConfig:
    """Hyperparameters of reward-model training."""

    objective: str = "bt"
    """``bt`` (Bradley-Terry) or ``classification``."""
    n_updates: int = 500
    lr: float = 5e-2
    weight_decay: float = 0.0
    use_strength: bool = False
    """Read ``Preferences.strength`` as the label probability p (else hard labels)."""
    batch_size: int | None = None
    """Pairs per Adam step, drawn with replacement; None = every pair every step (full-batch). A
    transformer reward model needs minibatches: one full-batch step over 1000 token pairs costs
    as much as ~15 steps of 64 pairs (llmtrack.reward_model)."""
    seed: int = 0
    """Seeds the minibatch sampler."""

    def __post_init__(self) -> None:
        if not isinstance(self.objective, str) or self.objective not in OBJECTIVES:
            raise ValueError(f"objective: unknown objective {self.objective!r}; valid: {sorted(OBJECTIVES)}")
        check_minibatch_training(self)


def train_reward_model(model: nn.Module, prefs: Preferences,
                       config: RewardModelConfig = RewardModelConfig()) -> list[float]:
    """Fit ``model.score`` to ``prefs`` with Adam (full-batch, or minibatches of ``config.batch_size``
    pairs by the shared loop, :func:`minirl.algos.minibatch.minibatch_training`), in place; returns the
    loss per update (docs/equations.md §5)."""
    if config.use_strength and prefs.strength is None:
        raise ValueError("prefs: use_strength=True needs Preferences.strength (label probabilities)")
    objective = OBJECTIVES[config.objective]
    label = prefs.strength if config.use_strength else None

    def loss_fn(index: Tensor | None) -> tuple[Tensor, float]:
        chosen, rejected, p = prefs.chosen, prefs.rejected, label
        if index is not None:
            chosen, rejected, p = chosen[index], rejected[index], (None if label is None else label[index])
        r_chosen, r_rejected = model.score(chosen), model.score(rejected)  # (B,) each
        loss = objective(r_chosen, r_rejected, None if p is None else p.to(r_chosen.device))  # docs/equations.md §5
        return loss, loss.item()

    return minibatch_training(list(model.parameters()), len(prefs), config, loss_fn)
