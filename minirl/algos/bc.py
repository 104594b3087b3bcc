"""Behaviour cloning (seed §2.4; docs/equations.md §3).

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

import torch
from torch import Tensor
from tqdm.auto import tqdm

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
    return -batch.masked_mean(policy.log_prob(batch))
    # END SOLUTION


def train_bc(policy: Policy, demos: TrajectoryBatch, config: BCConfig = BCConfig()) -> dict[str, list[float]]:
    """Fit ``policy`` (a torch module) to ``demos`` by behaviour cloning, in place.

    Returns:
        history: ``{"loss/bc": [...]}``, one value per update.
    """
    if demos.n_steps == 0:
        raise ValueError("demos: the demonstration set has no real steps")
    params = [p for p in policy.parameters() if p.requires_grad]  # type: ignore[attr-defined]
    if not params:
        raise ValueError("policy: has no trainable parameters")
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    history: dict[str, list[float]] = {"loss/bc": []}
    B = demos.batch_size
    for _ in tqdm(range(config.n_updates), desc="BC", disable=not config.progress):
        if config.batch_size is None or config.batch_size >= B:
            minibatch = demos
        else:
            minibatch = demos[torch.randint(B, (config.batch_size,), generator=generator)]
        loss = bc_loss(policy, minibatch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history["loss/bc"].append(loss.item())
    return history
