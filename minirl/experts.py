"""Experts: policies that can label any state (the oracle DAgger needs, survey Theorem 2.3).

* :func:`optimal_tabular_expert` -- the greedy optimal policy of value iteration, as a
  fixed :class:`~minirl.policies.TabularPolicy` (label = its action at every state).
* :class:`CartPoleExpert` -- a hand-written linear controller for CartPole-v1 that balances
  the pole for the full 500 steps from any start the env draws.
"""

from __future__ import annotations

import torch
from torch import Tensor

from minirl.mdp import TabularMDP, value_iteration
from minirl.policies import CategoricalPolicy, TabularPolicy

__all__ = ["optimal_tabular_expert", "CartPoleExpert"]


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
