"""Batch sources: where on-policy algorithms get their next batch (docs/concepts.md).

PPO, the adversarial trainer and every algorithm that samples from its own policy need the same
thing from a world: *a fresh on-policy* :class:`~minirl.data.TrajectoryBatch`, again and again.
A batch source is that, and nothing else: calling it returns the next batch. Two worlds, two
kinds of source, one training loop:

    FragmentSource   T steps of every sub-env of a gymnasium vector env (rows = sub-envs,
                     episodes cut anywhere, bootstrapped next values)     minirl.rollout
    ResponseSource   a language model's sampled responses to fresh prompts (rows = responses)
                                                                          llmtrack.pipelines.rlhf
    CallableSource   any function () -> TrajectoryBatch (a bandit in a test, a custom sampler)

Beside the batch a source reports two things the loop needs and the learner must not see:
``steps_per_batch`` -- how its budget is counted (:class:`Budget`) -- and ``episode_returns``,
the (gold, else env) returns of the episodes its last batch finished, for logging only.

Design decision: the stopping rule is written once, in :class:`Budget`. A source whose batches
all have the same size (a vector env: N x T steps) is budgeted in iterations,
ceil(total_steps / steps_per_batch); one whose batches vary (responses end at [EOS]) in the real
steps it has produced. Either way the fraction spent drives learning-rate annealing and training
stops once it reaches 1.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from gymnasium.vector import VectorEnv

from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Policy, ValueFunction
from minirl.rollout import FragmentState, check_action_space, collect_fragments

__all__ = ["BatchSource", "FragmentSource", "CallableSource", "Budget", "as_source"]


class BatchSource(ABC):
    """A callable that returns a fresh on-policy batch (module docstring).

    Attributes:
        steps_per_batch: the number of (vector) steps every batch takes, if fixed; None when
            batch sizes vary. It decides how :class:`Budget` counts.
        episode_returns: returns of the episodes finished in the last batch (logging only).
    """

    steps_per_batch: int | None = None

    def __init__(self) -> None:
        self.episode_returns: list[float] = []

    @abstractmethod
    def __call__(self) -> TrajectoryBatch:
        """The next batch: obs, actions, mask and the sampling policy's log_probs; for GAE also
        values and next_values; for group estimators group_size."""


class FragmentSource(BatchSource):
    """``n_steps`` steps of every sub-env of ``envs`` per call, continuing where the last call stopped
    (:func:`minirl.rollout.collect_fragments`); the first call resets ``envs`` with ``seed``.

    Args:
        envs: a gymnasium vector env. policy: the acting policy. value_fn: gives V(s_t) and the
            bootstrap V(s_{t+1}). generator: the action sampler (PPO shares its own).
    """

    def __init__(self, envs: VectorEnv, policy: Policy, value_fn: ValueFunction | None, n_steps: int,
                 generator: torch.Generator, seed: int = 0):
        super().__init__()
        if value_fn is None:
            raise ValueError("value_fn: collecting env fragments needs a value function (for bootstrapping)")
        check_action_space(envs, policy)
        self.envs, self.policy, self.value_fn, self.generator = envs, policy, value_fn, generator
        self.n_steps, self.seed = check_int(n_steps, "n_steps", 1), check_seed(seed)
        self.steps_per_batch = self.n_steps * envs.num_envs
        self.state: FragmentState | None = None

    def __call__(self) -> TrajectoryBatch:
        batch, self.state = collect_fragments(self.envs, self.policy, self.value_fn, self.n_steps, self.state,
                                              self.generator, seed=self.seed)
        self.episode_returns = self.state.finished_returns
        return batch


class CallableSource(BatchSource):
    """A plain function ``() -> TrajectoryBatch`` as a source (no episode returns). Budgeted in real
    steps, or in calls when ``steps_per_batch`` is given (then ``total_steps / steps_per_batch`` calls)."""

    def __init__(self, sample: Callable[[], TrajectoryBatch], steps_per_batch: int | None = None):
        super().__init__()
        self.sample = sample
        self.steps_per_batch = None if steps_per_batch is None else check_int(steps_per_batch, "steps_per_batch", 1)

    def __call__(self) -> TrajectoryBatch:
        batch = self.sample()
        if not isinstance(batch, TrajectoryBatch):
            raise ValueError(f"envs: a batch source must return a TrajectoryBatch, got {type(batch).__name__}")
        return batch


def as_source(envs: VectorEnv | BatchSource | Callable[[], TrajectoryBatch], policy: Policy,
              value_fn: ValueFunction | None, n_steps: int, generator: torch.Generator, seed: int = 0
              ) -> BatchSource:
    """The door: a vector env becomes a :class:`FragmentSource` (acting with ``policy``), a source
    stays itself, a plain callable becomes a :class:`CallableSource`."""
    if isinstance(envs, VectorEnv):
        return FragmentSource(envs, policy, value_fn, n_steps, generator, seed)
    if isinstance(envs, BatchSource):
        return envs
    if callable(envs):
        return CallableSource(envs)
    raise ValueError("envs: must be a gymnasium VectorEnv or a callable batch source")


@dataclass
class Budget:
    """How much of a training budget of ``total_steps`` is spent (module docstring).

    With ``steps_per_batch`` the unit is an iteration and ``total`` = ceil(total_steps /
    steps_per_batch); without, the unit is a real step and ``total`` = total_steps. ``used``
    counts units spent; ``fraction`` = used / total; training stops once it reaches 1.
    """

    total_steps: int
    steps_per_batch: int | None = None
    used: int = 0

    def __post_init__(self) -> None:
        self.total_steps = check_int(self.total_steps, "total_steps", 1)
        per_batch = self.steps_per_batch
        self.total = self.total_steps if per_batch is None else math.ceil(self.total_steps / per_batch)

    @property
    def fraction(self) -> float:
        return self.used / self.total

    @property
    def spent(self) -> bool:
        return self.used >= self.total

    def spend(self, batch: TrajectoryBatch) -> int:
        """Count one batch; returns the units it cost (for a progress bar)."""
        cost = batch.n_steps if self.steps_per_batch is None else 1
        self.used += cost
        return cost
