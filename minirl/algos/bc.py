"""Behaviour cloning (survey §2.4; docs/equations.md §3).

    pi_BC = argmax_pi E_{(s, a) ~ D_demo} log pi(a | s)

Maximum likelihood of the demonstrated actions, i.e. minimising the masked mean of
-log pi(a_t | s_t) over the real steps of a TrajectoryBatch. Nothing here knows what a
state is: the same function fits a table, an MLP, or a language model (where it is SFT,
with prompt positions outside the mask).

Seed Theorem 2.1: trained to error eps on the expert's state distribution, BC can make
C + T^2 eps mistakes over T steps on its own distribution -- the compounding error that
DAgger (:mod:`minirl.algos.dagger`) removes.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from minirl.algos.minibatch import minibatch_training, trainable_parameters
from minirl.checks import check_minibatch_training
from minirl.data import TrajectoryBatch
from minirl.policies import Policy

__all__ = ["BCConfig", "bc_loss", "train_bc"]


@dataclass(frozen=True)
class BCConfig:
    """Hyperparameters of behaviour cloning."""

    n_updates: int = 500
    """Gradient steps (each on one minibatch of trajectories)."""
    batch_size: int | None = None
    """Trajectories per minibatch; None = the whole dataset every step (full-batch)."""
    lr: float = 1e-2
    """Adam learning rate."""
    weight_decay: float = 0.0
    """Adam (L2) weight decay."""
    seed: int = 0
    """Seeds the minibatch sampler."""
    progress: bool = False
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        check_minibatch_training(self)


def bc_loss(policy: Policy, batch: TrajectoryBatch) -> Tensor:
    """Negative log-likelihood of the batch's actions, averaged over real steps (docs/equations.md §3)."""
    # BEGIN SOLUTION
    return -batch.masked_mean(policy.log_prob(batch))  # docs/equations.md §3
    # END SOLUTION


def train_bc(policy: Policy, demos: TrajectoryBatch, config: BCConfig = BCConfig()) -> dict[str, list[float]]:
    """Fit ``policy`` (a torch module) to ``demos`` by behaviour cloning, in place; minibatches of
    trajectories by the shared loop (:func:`minirl.algos.minibatch.minibatch_training`).

    Returns:
        history: ``{"loss/bc": [...]}``, one value per update.
    """
    if demos.n_steps == 0:
        raise ValueError("demos: the demonstration set has no real steps")
    params = trainable_parameters(policy, "policy")  # type: ignore[arg-type]

    def loss_fn(index: Tensor | None) -> tuple[Tensor, float]:
        loss = bc_loss(policy, demos if index is None else demos[index])  # docs/equations.md §3
        return loss, loss.item()

    # several processes weight their shards by real steps, so the step is the global mean over tokens
    tokens = demos.mask.sum(1)
    return {"loss/bc": minibatch_training(params, demos.batch_size, config, loss_fn, desc="BC", weights=tokens)}
