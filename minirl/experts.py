"""Experts: policies that can label any state (the oracle DAgger needs, survey Theorem 2.3).

* :func:`optimal_tabular_expert` -- the greedy optimal policy of value iteration, as a
  fixed :class:`~minirl.policies.TabularPolicy` (label = its action at every state).
* :class:`CartPoleExpert` -- a hand-written linear controller for CartPole-v1 that balances
  the pole for the full 500 steps from any start the env draws.
* :class:`SampledExpert` -- a stochastic expert's hard labels: a *sample* a ~ pi*(. | s) at each
  visited state (labelling with its mode would distil the mode, another policy).
"""

from __future__ import annotations

import torch
from torch import Tensor

from torch import nn

from minirl.checks import check_seed
from minirl.data import TrajectoryBatch
from minirl.mdp import TabularMDP, value_iteration
from minirl.policies import CategoricalPolicy, TabularPolicy, distribution_labels

__all__ = ["optimal_tabular_expert", "CartPoleExpert", "SampledExpert"]


def optimal_tabular_expert(mdp: TabularMDP) -> TabularPolicy:
    """The deterministic optimal policy of ``mdp`` (value iteration), ready to label states."""
    _, _, pi = value_iteration(mdp)
    return TabularPolicy.from_table(pi)


class CartPoleExpert(CategoricalPolicy):
    """Push right iff k . (x, x_dot, theta, theta_dot) > 0, with gains k = (0.5, 1, 10, 2).

    The theta and theta_dot terms are a PD controller that keeps the pole up; the small x and
    x_dot terms lean the pole towards the centre so the cart does not drift off the track.
    Deterministic: its log-probs are log 1 = 0 for its action and -inf for the other.
    """

    gains = (0.5, 1.0, 10.0, 2.0)

    def __init__(self) -> None:
        super().__init__()
        self.n_actions = 2
        self.register_buffer("k", torch.tensor(self.gains))

    def log_probs_all(self, obs: Tensor) -> Tensor:
        if obs.shape[-1] != 4:
            raise ValueError(f"obs: CartPole observations have 4 features, got {obs.shape[-1]}")
        push_right = (obs.float() @ self.k > 0).long()  # (...,)
        one_hot = torch.nn.functional.one_hot(push_right, 2).float()
        return one_hot.log()  # (..., 2): 0 and -inf


class SampledExpert(nn.Module):
    """An expert whose ``label`` at each visited state is a sample a ~ pi*(. | s) of a stochastic expert.

    DAgger asks ``expert.label(batch)``. A distribution's mode is another (deterministic) policy, so
    labelling with it would distil the mode; with a sample, BC on the aggregate maximises
    E_{s ~ d^pi_i} E_{a ~ pi*(.|s)} log pi(a | s), whose optimum on the visited states is pi* itself.
    For a deterministic expert the sample is its label. Works for any expert that gives its
    distribution (:func:`~minirl.policies.distribution_labels`: tables, a task's exact expert, an LM).
    ``sample``, ``log_prob`` and ``entropy`` pass through, so it can act in DAgger's roll-in too.
    Labels come from its own generator (seeded once), so a run is reproducible.
    """

    def __init__(self, expert: nn.Module, seed: int = 0):
        super().__init__()
        self.expert, self.n_actions = expert, expert.n_actions
        self.generator = torch.Generator().manual_seed(check_seed(seed))

    @torch.no_grad()
    def label(self, batch: TrajectoryBatch) -> Tensor:
        """A sample of pi*(. | s_t) at every step, (B, T) long (padding: any action)."""
        probs = distribution_labels(self.expert, batch, "expert").exp().double().cpu()  # (B, T, A)
        B, T, A = probs.shape
        rows = probs.reshape(B * T, A)
        rows = torch.where(rows.sum(-1, keepdim=True) > 0, rows, torch.ones_like(rows))  # padding rows may be 0
        return torch.multinomial(rows, 1, generator=self.generator).reshape(B, T)

    def sample(self, obs: Tensor, generator: torch.Generator | None = None,
               deterministic: bool = False) -> tuple[Tensor, Tensor]:
        return self.expert.sample(obs, generator=generator, deterministic=deterministic)

    def log_prob(self, batch: TrajectoryBatch) -> Tensor:
        return self.expert.log_prob(batch)

    def entropy(self, batch: TrajectoryBatch) -> Tensor:
        return self.expert.entropy(batch)
