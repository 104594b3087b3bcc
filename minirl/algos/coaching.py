"""Coaching: label each visited state with an action the learner can reach (He, Daumé & Eisner 2012).

DAgger (:mod:`minirl.algos.dagger`, docs/equations.md §3) labels every state the learner visits with the
expert's action; Q^E below is the expert's action value (docs/equations.md §1). When the learner is far
from the expert -- it gives the expert's action little probability, or its policy class cannot follow the
expert's way back -- such a label may be out of its reach, and fitting it costs the learner elsewhere.
He, Daumé & Eisner ("Imitation learning by coaching", NIPS 2012) teach a *hope* action instead, good
under the task's loss and easy for the current learner:

    a_hope(s) = argmax_a [ eta * score_theta(a | s) - loss(s, a) ].

This module uses a thresholded form of it, with the expert's regret as the loss:

    regret(s, a) = Q^E(s, a_E(s)) - Q^E(s, a)           (the expert acts after a; 0 at a = a_E(s))
    R(s)         = { a : regret(s, a) <= tolerance }     ("recoverable"; a_E(s) is always in R(s))
    label(s)     = a_E(s)                                if pi_theta(a_E(s) | s) >= threshold
                 = argmax_{a in R(s)} pi_theta(a | s)     otherwise (ties: the lowest action index)

threshold = 0 gives the expert's labels (plain DAgger). threshold = 1 teaches the learner's favourite
recoverable action wherever it is not already sure of the expert's; where every action is recoverable
(nothing left to lose, e.g. sort after a first mistake under its exact-match reward), that is the
learner's own favourite action. Every threshold in (1/2, 1] gives the same labels: an action of
probability above 1/2 is the learner's favourite anyway (at exactly 1/2 a tie may go to a lower index).

Design decisions:
  * A lexicographic rule rather than He et al.'s eta trade-off: first never teach an action that loses
    more than ``tolerance`` under the expert's completion, then prefer the expert's action where the
    learner already gives it ``threshold`` probability, else the learner's favourite. Two knobs with
    units (a probability, a loss), and no exchange rate between log-probabilities and losses to tune.
  * The regret is supplied by the caller, ``regret_fn(batch) -> (B, T, A)``: Q^E is knowledge of the task
    and its expert, not of the algorithm (a tabular MDP: ``minirl.mdp.policy_evaluation``; sort: exact,
    :meth:`llmtrack.tasks.sort.SortTask.regret`). It must be 0 at the expert's action (checked).
  * The learner is read as it is when the states are labelled. DAgger labels each round's visits once,
    right after collecting them, so they are the states of pi_i with labels reachable by pi_i; they are
    not revisited when the learner changes in later rounds.
  * :class:`Coach` is an :class:`~minirl.policies.Expert` (``label`` gives the coached labels, ``sample``
    is the expert's, for DAgger's roll-in), so ``train_dagger`` runs it unchanged on a table or an LM.
    The learner's distribution is read with :func:`minirl.policies.distribution_labels`.

Shapes: learner log-probs (B, T, A); expert actions (B, T) long; regret (B, T, A); mask (B, T) bool;
labels (B, T) long (the expert's action on padded steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from minirl.checks import check_number, check_probability
from minirl.data import TrajectoryBatch
from minirl.policies import Expert, Policy, check_same_actions, distribution_labels

__all__ = ["CoachConfig", "coach_labels", "Coach"]

# regret_fn(batch) -> (B, T, A): Q^E(s_t, a_E) - Q^E(s_t, a) at every step of the batch.
RegretFn = Callable[[TrajectoryBatch], Tensor]


@dataclass(frozen=True)
class CoachConfig:
    """The coaching rule's two knobs (module docstring)."""

    threshold: float = 0.1
    """Teach the expert's action where the learner gives it at least this probability, in [0, 1]."""
    tolerance: float = 0.0
    """An action is recoverable where its regret is at most this (>= 0, in the task's reward units)."""

    def __post_init__(self) -> None:
        check_probability(self.threshold, "threshold")
        check_number(self.tolerance, "tolerance", 0.0)


def coach_labels(learner_log_probs: Tensor, expert_actions: Tensor, regret: Tensor, mask: Tensor,
                 config: CoachConfig = CoachConfig()) -> Tensor:
    """The coached label at every step (module docstring), (B, T) long.

    Args:
        learner_log_probs: log pi_theta(. | s_t), (B, T, A).
        expert_actions: a_E(s_t), (B, T) integer.
        regret: Q^E(s_t, a_E) - Q^E(s_t, a), (B, T, A), finite, 0 at a_E on real steps.
        mask: (B, T) bool, the real steps; padded steps get the expert's action.
    """
    if not isinstance(config, CoachConfig):
        raise ValueError(f"config: must be a CoachConfig, got {type(config).__name__}")
    if learner_log_probs.ndim != 3:
        raise ValueError(f"learner_log_probs: must have shape (B, T, A), got {tuple(learner_log_probs.shape)}")
    B, T, A = learner_log_probs.shape
    if tuple(mask.shape) != (B, T):
        raise ValueError(f"mask: must have shape (B, T) = {(B, T)}, got {tuple(mask.shape)}")
    if tuple(expert_actions.shape) != (B, T) or expert_actions.dtype.is_floating_point:
        raise ValueError(f"expert_actions: must be integer actions of shape (B, T) = {(B, T)}, "
                         f"got {expert_actions.dtype} {tuple(expert_actions.shape)}")
    if tuple(regret.shape) != (B, T, A):
        raise ValueError(f"regret: must have shape (B, T, A) = {(B, T, A)}, got {tuple(regret.shape)}")
    device = learner_log_probs.device
    mask, a_e = mask.to(device).bool(), expert_actions.to(device).long()
    regret = regret.to(device=device, dtype=torch.float64)
    if not torch.isfinite(regret[mask]).all():
        raise ValueError("regret: must be finite on real steps")
    real = a_e[mask]
    if real.numel() and (real.min() < 0 or real.max() >= A):
        raise ValueError(f"expert_actions: must lie in [0, {A}) on real steps")
    a_e = torch.where(mask, a_e, torch.zeros_like(a_e))
    at_expert = regret.gather(-1, a_e.unsqueeze(-1)).squeeze(-1)  # (B, T)
    if (at_expert[mask].abs() > 1e-6).any():
        raise ValueError("regret: must be 0 at the expert's action (Q^E(s, a_E) - Q^E(s, a_E)); "
                         f"got up to {float(at_expert[mask].abs().max()):.3g}")
    logp = learner_log_probs.detach().double()
    recoverable = (regret <= config.tolerance) | nn.functional.one_hot(a_e, A).bool()  # (B, T, A); a_E always in
    hope = torch.where(recoverable, logp, torch.full_like(logp, float("-inf"))).argmax(-1)  # (B, T)
    sure = logp.gather(-1, a_e.unsqueeze(-1)).squeeze(-1).exp() >= config.threshold  # pi(a_E | s) >= threshold
    return torch.where(mask & ~sure, hope, expert_actions.to(device).long())


class Coach(nn.Module):
    """DAgger's labeller with coached labels (module docstring): an Expert for ``train_dagger``.

    Args:
        learner: the policy being trained (read, never changed), the same object ``train_dagger`` trains.
        expert: gives a_E (``label``) and acts in the roll-in (``sample``).
        regret_fn: ``regret_fn(batch) -> (B, T, A)``, the expert's regret at every step.
        config: threshold and tolerance.

    After each ``label`` call, ``last_stats["coach/relabelled"]`` is the share of real steps whose label
    is not the expert's; ``relabelled`` / ``labelled`` count them over all calls.
    """

    def __init__(self, learner: Policy, expert: Expert, regret_fn: RegretFn, config: CoachConfig = CoachConfig()):
        super().__init__()
        if not isinstance(config, CoachConfig):
            raise ValueError(f"config: must be a CoachConfig, got {type(config).__name__}")
        if not callable(regret_fn):
            raise ValueError(f"regret_fn: must be callable (batch -> (B, T, A) regrets), got {type(regret_fn).__name__}")
        check_same_actions(learner, expert, "learner", "expert")
        self.expert, self.regret_fn, self.config = expert, regret_fn, config
        self._learner = [learner]  # a list: not registered as a submodule (the coach does not own it)
        self.n_actions = getattr(expert, "n_actions", None)
        self.labelled, self.relabelled = 0, 0
        self.last_stats: dict[str, float] = {}

    @torch.no_grad()
    def label(self, batch: TrajectoryBatch) -> Tensor:
        """Coached labels at every step of ``batch``, (B, T) long, on ``batch.actions``' device."""
        expert_actions = self.expert.label(batch)
        learner_log_probs = distribution_labels(self._learner[0], batch, "learner")
        regret = self.regret_fn(batch)
        if not isinstance(regret, Tensor):
            raise ValueError(f"regret_fn: must return a Tensor (B, T, A), got {type(regret).__name__}")
        labels = coach_labels(learner_log_probs, expert_actions, regret, batch.mask, self.config)
        mask = batch.mask.to(labels.device)
        changed = int(((labels != expert_actions.to(labels.device).long()) & mask).sum())
        self.labelled += int(mask.sum())
        self.relabelled += changed
        self.last_stats = {"coach/relabelled": changed / max(1, int(mask.sum()))}
        return labels.to(batch.actions.device)

    def sample(self, obs: Tensor, generator: torch.Generator | None = None,
               deterministic: bool = False) -> tuple[Tensor, Tensor]:
        return self.expert.sample(obs, generator=generator, deterministic=deterministic)
