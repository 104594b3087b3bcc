"""Adversarial imitation done exactly on a tabular MDP: the oracle for the whole f-divergence family.

With the dynamics known, everything the sample-based trainer estimates can be computed:

    rho_pi(s, a) = d(s) pi(a|s),  d^T = rho0^T (I - gamma P_pi)^{-1}     exact occupancy (docs/equations.md §1)
    h*(s, a)     = log rho_demo(s, a) / rho_pi(s, a)                      the optimal discriminator's logit
    r(s, a)      = u f'(u) - f(u),  u = e^{h*}                            the derived reward (§4)
    grad J_r     = sum_s d(s) sum_a grad pi(a|s) Q^pi_r(s, a)             the policy gradient theorem

and the claim of docs/equations.md §4 becomes an identity one can test: the policy gradient of the
return under r(h*) equals -grad_theta D_f(rho_demo || rho_pi_theta), the latter obtained by autograd
straight through the linear solve above. ``train_exact`` then runs the min-max game with a perfect
discriminator: each step is exact gradient descent on D_f.

Episodes end on entering a ``mdp.terminal`` state: such states get occupancy from their inflow
but take no actions, so they are left out of rho (a demonstration never contains them either).

The policy is any :class:`~minirl.policies.CategoricalPolicy` over state ids (``log_probs_all``
on ``arange(S)`` gives the (S, A) table), so a free softmax table and a restricted
parameterisation (the mode-seeking demo) are handled alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from minirl.checks import check_int, check_number
from minirl.divergences import DIVERGENCES, f_divergence, get_divergence, get_reward_rule
from minirl.mdp import TabularMDP
from minirl.policies import CategoricalPolicy

__all__ = ["exact_occupancy", "optimal_logit", "q_values", "policy_gradient_surrogate", "divergence_gradient",
           "reward_gradient", "ExactImitationConfig", "train_exact"]


def _tables(mdp: TabularMDP, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """P with the rows of terminal states cut (the episode ends there), rho0, and the acting-state mask."""
    P = torch.tensor(np.array(mdp.P), dtype=dtype)  # (S, A, S), a writable copy
    acting = torch.ones(mdp.n_states, dtype=torch.bool)
    if mdp.terminal is not None:
        acting = torch.as_tensor(~np.asarray(mdp.terminal))
        P[~acting] = 0.0
    return P, torch.tensor(np.array(mdp.rho0), dtype=dtype), acting


def exact_occupancy(mdp: TabularMDP, pi: Tensor) -> Tensor:
    """rho(s, a) = d(s) pi(a|s) with d^T = rho0^T (I - gamma P_pi)^{-1}, shape (S, A); differentiable in pi.

    Unnormalised, as :func:`minirl.mdp.occupancy_measure` (sums to 1 / (1 - gamma) without
    terminal states); zero on terminal states. Needs gamma < 1.
    """
    if not mdp.gamma < 1.0:
        raise ValueError(f"mdp.gamma: exact occupancy needs gamma < 1, got {mdp.gamma}")
    if tuple(pi.shape) != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"pi: must have shape (S, A) = {(mdp.n_states, mdp.n_actions)}, got {tuple(pi.shape)}")
    P, rho0, acting = _tables(mdp, pi.dtype)
    P_pi = torch.einsum("sa,sat->st", pi, P)  # (S, S)
    eye = torch.eye(mdp.n_states, dtype=pi.dtype)
    d = torch.linalg.solve((eye - mdp.gamma * P_pi).T, rho0)  # (S,)
    return (d * acting)[:, None] * pi  # (S, A)


def optimal_logit(rho_demo: Tensor, rho_pi: Tensor, h_max: float = 20.0) -> Tensor:
    """h*(s, a) = log rho_demo / rho_pi, the logit of the best discriminator (demo = label 1).

    Clipped to [-h_max, h_max]: a real discriminator's logits are finite, and an exact zero in
    rho_demo would otherwise give AIRL's reward -inf. Where both vanish (unreachable pairs) h* = 0.
    """
    tiny = torch.finfo(rho_pi.dtype).tiny
    h = torch.log(rho_demo.clamp_min(tiny)) - torch.log(rho_pi.clamp_min(tiny))
    h = torch.where((rho_demo > 0) | (rho_pi > 0), h, torch.zeros_like(h))
    return h.clamp(-h_max, h_max)


def q_values(mdp: TabularMDP, pi: Tensor, reward: Tensor) -> tuple[Tensor, Tensor]:
    """Q^pi and V^pi for a reward table r(s, a), by a linear solve: V = (I - gamma P_pi)^{-1} r_pi."""
    P, _, acting = _tables(mdp, pi.dtype)
    r = torch.where(acting[:, None], reward.to(pi.dtype), torch.zeros_like(pi))
    P_pi = torch.einsum("sa,sat->st", pi, P)
    V = torch.linalg.solve(torch.eye(mdp.n_states, dtype=pi.dtype) - mdp.gamma * P_pi, (pi * r).sum(-1))
    return r + mdp.gamma * P @ V, V  # (S, A), (S,)


def policy_gradient_surrogate(mdp: TabularMDP, pi: Tensor, reward: Tensor) -> Tensor:
    """A scalar whose gradient is the policy gradient of the return under a *fixed* reward table.

    Policy gradient theorem: grad J = sum_s d(s) sum_a grad pi(a|s) (Q(s, a) - V(s)), with d and
    Q computed exactly and held constant; only pi carries the graph. The baseline V does not change
    the gradient (sum_a grad pi = 0). This is what REINFORCE / PPO estimate from samples.
    """
    # BEGIN SOLUTION
    with torch.no_grad():
        d = exact_occupancy(mdp, pi).sum(-1)  # (S,)  discounted state visits
        Q, V = q_values(mdp, pi, reward)
        advantage = Q - V[:, None]  # (S, A)
    return (d[:, None] * pi * advantage).sum()
    # END SOLUTION


def _policy_table(policy: CategoricalPolicy, n_states: int) -> Tensor:
    return policy.log_probs_all(torch.arange(n_states)).exp().double()  # (S, A)


def divergence_gradient(mdp: TabularMDP, policy: CategoricalPolicy, rho_demo: Tensor, divergence: str) -> list[Tensor]:
    """grad_theta D_f(rho_demo || rho_pi_theta) by autograd through the exact occupancy measure."""
    params = [p for p in policy.parameters() if p.requires_grad]
    value = f_divergence(divergence, rho_demo.double(), exact_occupancy(mdp, _policy_table(policy, mdp.n_states)))
    return list(torch.autograd.grad(value, params))


def reward_gradient(mdp: TabularMDP, policy: CategoricalPolicy, rho_demo: Tensor, reward: str,
                    h_max: float = 20.0) -> list[Tensor]:
    """The policy gradient of the return under r(h*), h* the optimal discriminator for the current policy."""
    rule = get_reward_rule(reward)
    params = [p for p in policy.parameters() if p.requires_grad]
    pi = _policy_table(policy, mdp.n_states)
    with torch.no_grad():
        r = rule.reward(optimal_logit(rho_demo.double(), exact_occupancy(mdp, pi), h_max))  # (S, A)
    return list(torch.autograd.grad(policy_gradient_surrogate(mdp, pi, r), params))


@dataclass(frozen=True)
class ExactImitationConfig:
    """Hyperparameters of :func:`train_exact`."""

    divergence: str = "gail"
    """Which f (``minirl.divergences.DIVERGENCES``): gail, airl, fairl."""
    reward: str | None = None
    """Reward rule (``REWARD_RULES``); None = the one derived from ``divergence``."""
    steps: int = 500
    """Policy-gradient steps, each against the optimal discriminator of the current policy."""
    lr: float = 0.1
    """Adam step size on the policy's parameters."""
    h_max: float = 20.0
    """Clip of the discriminator's logit (see :func:`optimal_logit`)."""

    def __post_init__(self) -> None:
        get_divergence(self.divergence)
        if self.reward is not None:
            get_reward_rule(self.reward)
        check_int(self.steps, "steps", 1)
        check_number(self.lr, "lr", 0.0, strict_minimum=True)
        check_number(self.h_max, "h_max", 0.0, strict_minimum=True)


def train_exact(mdp: TabularMDP, policy: CategoricalPolicy, rho_demo: Tensor | np.ndarray,
                config: ExactImitationConfig = ExactImitationConfig()) -> list[dict[str, float]]:
    """Adversarial imitation with a perfect discriminator: min_pi D_f(rho_demo || rho_pi), exactly.

    Each step: rho_pi exactly, h* = log rho_demo / rho_pi, r = r(h*), one Adam step along the exact
    policy gradient of the return under r. Returns a history with the value of every divergence
    of the family at each step (so one can watch the method's own divergence fall, and the others).
    """
    rho_demo = torch.as_tensor(np.asarray(rho_demo), dtype=torch.float64)
    if tuple(rho_demo.shape) != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"rho_demo: must have shape (S, A) = {(mdp.n_states, mdp.n_actions)}, "
                         f"got {tuple(rho_demo.shape)}")
    if not bool((rho_demo >= 0).all()) or not float(rho_demo.sum()) > 0:
        raise ValueError("rho_demo: must be a non-negative, non-empty occupancy measure")
    rule = get_reward_rule(config.reward or config.divergence)
    params = [p for p in policy.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=config.lr)
    history = []
    for step in range(config.steps + 1):
        pi = _policy_table(policy, mdp.n_states)
        rho_pi = exact_occupancy(mdp, pi.detach())
        history.append({"step": step, **{f"divergence/{name}": float(f_divergence(name, rho_demo, rho_pi))
                                         for name in DIVERGENCES}})
        if step == config.steps:
            break
        with torch.no_grad():
            r = rule.reward(optimal_logit(rho_demo, rho_pi, config.h_max))
        optimiser.zero_grad()
        (-policy_gradient_surrogate(mdp, pi, r)).backward()  # ascend the return under r(h*)
        optimiser.step()
    return history
