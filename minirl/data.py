"""The library's one currency: a padded batch of trajectories (docs/concepts.md).

Every algorithm consumes and produces a :class:`TrajectoryBatch`: B trajectories
padded to T steps with a mask. The same type carries a tabular rollout, a
CartPole rollout, and (in ``llmtrack``) prompt + response token ids, so BC, DAgger
and the rest never know which world they are in.

Shapes (B = trajectories, T = steps):
    obs        (B, T, ...)  what the policy reads at each step: state ids (B, T),
                            feature vectors (B, T, d). A token-world policy may
                            instead read one context per trajectory (B, L); the
                            batch only requires obs.shape[0] == B.
    actions    (B, T)       discrete actions (long), or (B, T, d) continuous ones
    mask       (B, T)       True where a step is real, False on padding
    rewards    (B, T)       optional: rewards seen by the learner
    log_probs  (B, T)       optional: log pi(a_t | s_t) of the policy that sampled
    values     (B, T)       optional: value estimates V(s_t)
    terminated (B, T)       optional: True where step t ended the episode by reaching
                            a terminal state (not by a time limit)
    truncated  (B, T)       optional: True where step t ended the episode by a time limit
                            (the episode could have gone on: bootstrap from s_{t+1})
    next_obs   (B, T, ...)  optional: the true s_{t+1} of every step (the final observation
                            where an episode ended, not the next episode's first one);
                            step-wise observations only
    next_values (B, T)      optional: V(s_{t+1}) for GAE, 0 where step t terminated
    group_size int          optional: rows come in consecutive groups of this many
                            responses to one prompt (RLOO / GRPO baselines)
    info       dict         what learners must never see (the gold reward of an MDP\\R,
                            labels' provenance); no algorithm reads it

``episode_end`` = terminated | truncated is derived, not stored.

Design decision: what a learner legitimately needs about the trajectories -- where episodes
end and why, the true next observation, the bootstrap value, the grouping of responses -- is a
typed field of the batch itself, not a key of ``info`` and not a companion object. These are
per-step facts of the same rows and columns, so they are shape-checked here, selected by
``batch[index]``, padded by :meth:`TrajectoryBatch.cat` and moved by ``to`` together with the
steps they describe; a companion would need all of that a second time. Logging (the returns of
finished episodes) is not batch data: a batch source reports it (:mod:`minirl.sources`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from minirl.checks import check_binary_mask, check_finite, check_int, check_number

__all__ = ["TrajectoryBatch", "Preferences", "empirical_occupancy", "last_step"]

_OPTIONAL = ("rewards", "log_probs", "values", "terminated", "truncated", "next_values")
_TENSORS = ("obs", "actions", "mask", *_OPTIONAL, "next_obs")  # every per-row tensor field


@dataclass(frozen=True)
class TrajectoryBatch:
    """B trajectories padded to T steps; validated on construction (see module docstring)."""

    obs: Tensor
    actions: Tensor
    mask: Tensor
    rewards: Tensor | None = None
    log_probs: Tensor | None = None
    values: Tensor | None = None
    terminated: Tensor | None = None
    truncated: Tensor | None = None
    next_obs: Tensor | None = None
    next_values: Tensor | None = None
    group_size: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _TENSORS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Tensor):
                raise ValueError(f"{name}: must be a torch.Tensor, got {type(value).__name__}")
        if self.mask.ndim != 2:
            raise ValueError(f"mask: must have shape (B, T), got {tuple(self.mask.shape)}")
        if self.mask.dtype != torch.bool:  # exactly 0/1: a mask of 0.5, 2 or -1 is refused, not read as True
            object.__setattr__(self, "mask", check_binary_mask(self.mask, "mask"))
        B, T = self.mask.shape
        if tuple(self.actions.shape[:2]) != (B, T):
            raise ValueError(f"actions: must start with (B, T) = {(B, T)}, got {tuple(self.actions.shape)}")
        if self.obs.ndim < 2 or self.obs.shape[0] != B:
            raise ValueError(f"obs: must have B = {B} rows and at least 2 dims, got {tuple(self.obs.shape)}")
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != (B, T):
                raise ValueError(f"{name}: must have shape (B, T) = {(B, T)}, got {tuple(value.shape)}")
        for name in ("terminated", "truncated"):
            value = getattr(self, name)
            if value is not None and value.dtype != torch.bool:
                object.__setattr__(self, name, check_binary_mask(value, name))
        if self.next_obs is not None and (self.obs.shape[1] != T or self.next_obs.shape != self.obs.shape):
            raise ValueError(f"next_obs: must have the shape of step-wise obs (B, T, ...) = {tuple(self.obs.shape)}, "
                             f"got {tuple(self.next_obs.shape)}")
        if self.group_size is not None:
            check_int(self.group_size, "group_size", 1)
            if B % self.group_size:
                raise ValueError(f"group_size: {B} rows do not split into groups of {self.group_size}")
        # NaN / inf would flow silently into every loss (one NaN reward turns a PPO policy into NaN):
        # refused here, at the one boundary every batch crosses. Integer fields (ids) are finite by type.
        for name in ("obs", "actions", "rewards", "log_probs", "values", "next_obs", "next_values"):
            check_finite(getattr(self, name), name)

    # -- sizes ---------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    @property
    def horizon(self) -> int:
        return self.mask.shape[1]

    @property
    def n_steps(self) -> int:
        """Number of real (unmasked) steps."""
        return int(self.mask.sum())

    @property
    def lengths(self) -> Tensor:
        """Real steps per trajectory, shape (B,)."""
        return self.mask.sum(dim=1)

    @property
    def episode_end(self) -> Tensor:
        """(B, T) bool: True where an episode ended at step t, terminated or truncated."""
        ends = torch.zeros_like(self.mask)
        for flags in (self.terminated, self.truncated):
            if flags is not None:
                ends = ends | flags.to(ends.device)
        return ends

    # -- manipulation --------------------------------------------------------
    def replace(self, **changes: Any) -> "TrajectoryBatch":
        """A copy with some fields replaced (e.g. DAgger's relabelled actions)."""
        return dataclasses.replace(self, **changes)

    def __getitem__(self, index: Tensor | slice | Sequence[int]) -> "TrajectoryBatch":
        """Select trajectories (rows) by index; every per-step field follows. Selected rows no longer
        form consecutive groups, so ``group_size`` is dropped."""
        changes = {name: getattr(self, name)[index] for name in _TENSORS if getattr(self, name) is not None}
        return dataclasses.replace(self, **changes, group_size=None, info=dict(self.info))

    def to(self, device: torch.device | str) -> "TrajectoryBatch":
        changes = {name: getattr(self, name).to(device) for name in _TENSORS if getattr(self, name) is not None}
        return dataclasses.replace(self, **changes)

    def masked_mean(self, x: Tensor) -> Tensor:
        """Mean of a per-step quantity x (B, T) over the real steps."""
        m = self.mask.to(device=x.device, dtype=x.dtype)
        return (x * m).sum() / m.sum().clamp_min(1.0)

    def masked_sum(self, x: Tensor) -> Tensor:
        """Per-trajectory sum of x (B, T) over real steps, shape (B,): e.g. sequence log-prob."""
        return (x * self.mask.to(device=x.device, dtype=x.dtype)).sum(dim=1)

    @staticmethod
    def cat(batches: Sequence["TrajectoryBatch"]) -> "TrajectoryBatch":
        """Stack batches along B, padding with zeros (mask False) to the longest T.

        Step-wise obs (B, T, ...) are padded like every per-step field. Context obs (B, P + T)
        -- a prompt in the first P columns, the T steps' tokens in the last T (the token
        layout of ``llmtrack``) -- keep that layout: prompts are left-padded to the widest P,
        step columns right-padded to the longest T, so column P + t is still step t.
        Optional fields are kept only if every batch has them (``next_obs`` is padded like
        step-wise obs, ``group_size`` kept if all batches share it); ``info`` (which describes
        one collection run) is not merged.
        """
        if len(batches) == 0:
            raise ValueError("batches: need at least one TrajectoryBatch to concatenate")
        T = max(b.horizon for b in batches)
        stepwise = [b.obs.ndim >= 3 or b.obs.shape[1] == b.horizon for b in batches]
        if any(stepwise) and not all(stepwise):
            raise ValueError("batches: cannot mix step-wise observations with context (prompt + tokens) ones")

        def pad(x: Tensor, length: int, left: int = 0) -> Tensor:
            widths = [0, 0] * (x.ndim - 2) + [left, length - left - x.shape[1]]
            return torch.nn.functional.pad(x, widths) if any(widths) else x

        fields: dict[str, Tensor] = {}
        for name in ("actions", "mask", *_OPTIONAL):
            values = [getattr(b, name) for b in batches]
            if any(v is None for v in values):
                continue
            fields[name] = torch.cat([pad(v, T) for v in values])
        if all(stepwise):
            fields["obs"] = torch.cat([pad(b.obs, T) for b in batches])
        else:
            P = max(b.obs.shape[1] - b.horizon for b in batches)
            fields["obs"] = torch.cat([pad(b.obs, P + T, left=P - (b.obs.shape[1] - b.horizon)) for b in batches])
        if all(b.next_obs is not None for b in batches):
            fields["next_obs"] = torch.cat([pad(b.next_obs, T) for b in batches])
        sizes = {b.group_size for b in batches}
        return TrajectoryBatch(**fields, group_size=sizes.pop() if len(sizes) == 1 else None)

    def flat_steps(self) -> tuple[Tensor, Tensor]:
        """(obs, actions) of the real steps, flattened to (N, ...) and (N, ...); step-wise obs only."""
        if self.obs.shape[1] != self.horizon:
            raise ValueError("obs: flat_steps needs step-wise observations of shape (B, T, ...)")
        return self.obs[self.mask], self.actions[self.mask]


def last_step(mask: Tensor) -> Tensor:
    """(B, T) bool: True at each row's last real step (where a response or episode ends); all False
    on a row without real steps."""
    lengths = mask.long().sum(1)
    out = torch.zeros_like(mask)
    rows = lengths > 0
    out[rows.nonzero().squeeze(-1), lengths[rows] - 1] = True
    return out


@dataclass(frozen=True)
class Preferences:
    """Pairs of trajectories where ``chosen[i]`` was preferred to ``rejected[i]`` (docs/equations.md §5).

    Attributes:
        chosen, rejected: TrajectoryBatches with the same B (for tokens: the same prompt in row i).
        strength: optional (B,) probability in [0, 1] attached to each label (e.g. the
            Bradley-Terry probability the labeller used: p that ``chosen`` is preferred); None
            when labels are hard. DPO and the reward models read it as that probability, so
            values outside [0, 1] (or NaN) are refused here, once, for every consumer.
    """

    chosen: TrajectoryBatch
    rejected: TrajectoryBatch
    strength: Tensor | None = None

    def __post_init__(self) -> None:
        B = self.chosen.batch_size
        if self.rejected.batch_size != B:
            raise ValueError(f"rejected: has {self.rejected.batch_size} pairs but chosen has {B}")
        if B == 0:
            raise ValueError("chosen: the preference set is empty")
        if self.strength is not None:
            if not isinstance(self.strength, Tensor):
                raise ValueError(f"strength: must be a torch.Tensor or None, got {type(self.strength).__name__}")
            if tuple(self.strength.shape) != (B,):
                raise ValueError(f"strength: must have shape (B,) = ({B},), got {tuple(self.strength.shape)}")
            check_finite(self.strength, "strength")
            outside = (self.strength < 0) | (self.strength > 1)
            if bool(outside.any()):
                raise ValueError(f"strength: label probabilities must lie in [0, 1], got "
                                 f"{float(self.strength[outside][0])} at pair {int(outside.nonzero()[0])}")
        if self.chosen.obs.shape == self.rejected.obs.shape and self.chosen.actions.shape == self.rejected.actions.shape:
            same = ((self.chosen.actions == self.rejected.actions) | ~self.chosen.mask).flatten(1).all(1) \
                & (self.chosen.mask == self.rejected.mask).all(1) \
                & (self.chosen.obs == self.rejected.obs).flatten(1).all(1)
            if same.any():
                raise ValueError(f"rejected: pair {int(same.nonzero()[0])} is identical to its chosen trajectory")

    def __len__(self) -> int:
        return self.chosen.batch_size


def empirical_occupancy(batch: TrajectoryBatch, n_states: int, n_actions: int, gamma: float) -> np.ndarray:
    """Monte-Carlo occupancy from tabular trajectories: rho_hat(s, a) = (1/B) sum_i sum_t gamma^t 1[s_t = s, a_t = a].

    The same (unnormalised) convention as :func:`minirl.mdp.occupancy_measure`, so the two can be
    compared directly; this is what demonstrations let a learner estimate without any reward.
    """
    n_states, n_actions = check_int(n_states, "n_states", 1), check_int(n_actions, "n_actions", 1)
    gamma = check_number(gamma, "gamma", 0.0, 1.0, strict_minimum=True)
    if batch.obs.shape != batch.mask.shape:
        raise ValueError("batch: empirical_occupancy needs tabular state ids, obs of shape (B, T)")
    for name, ids, n in (("obs", batch.obs[batch.mask].long(), n_states),
                         ("actions", batch.actions[batch.mask].long(), n_actions)):
        if ids.numel() and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"{name}: ids must lie in [0, {n}), got range [{int(ids.min())}, {int(ids.max())}]")
    t = torch.arange(batch.horizon).expand_as(batch.mask)[batch.mask]  # time index of each real step
    index = batch.obs[batch.mask].long() * n_actions + batch.actions[batch.mask].long()
    weights = torch.as_tensor(gamma, dtype=torch.float64) ** t
    counts = torch.zeros(n_states * n_actions, dtype=torch.float64).index_add_(0, index, weights)
    return (counts / batch.batch_size).reshape(n_states, n_actions).numpy()
