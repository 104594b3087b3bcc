"""Exact evaluation of time-dependent policies on a finite-horizon MDP with absorbing ends.

The answer key of any world that collapses to a small tabular MDP run for T steps (a bigram language
whose state is the previous token, a gridworld with a goal): no sampling, one forward pass.

Symbols (docs/equations.md §1, §6). A TabularMDP gives P[s, a, s'], R[s, a] and the ``terminal``
states (absorbing, zero reward: an episode that enters one has ended). A policy is time-indexed,
pi_t(a | s) of shape (T, S, A) (a stationary (S, A) table is broadcast). For a batch of X initial
distributions d_0 (X, S) -- one per prompt, say -- the forward recursion is

    d_{t+1}(s') = sum_{s, a} d_t(s) pi_t(a|s) P(s' | s, a),     d_{t+1}(s') = 0 for terminal s'

(the mass that enters a terminal state leaves: the episode is over; so does mass that d_0 puts on one), and

    E_pi[R]       = sum_{t<T} sum_s d_t(s) sum_a pi_t(a|s) R(s, a)
    KL(pi || q)   = sum_{t<T} sum_s d_t(s) sum_a pi_t(a|s) log(pi_t(a|s) / q_t(a|s))

the second line being the chain rule of the KL between the two trajectory distributions
p^pi(tau) = prod_t pi_t(a_t|s_t) P(s_{t+1}|s_t, a_t) and p^q (the transitions cancel; docs/equations.md
§2, eq. 5-6). Each is one number per initial distribution, (X,).

The off-support rule. pi_t(a|s) log(pi_t / q_t) is 0 where pi_t(a|s) = 0 (0 log 0 = 0) and +inf where
q_t(a|s) = 0 < pi_t(a|s); a state no trajectory reaches (d_t(s) = 0) contributes nothing, whatever the
two policies do there. So KL(pi || q) is +inf exactly when pi puts mass on a trajectory q cannot produce.

Design: the distributions d_t over non-ended states are returned with the values, so a test can put
them beside :func:`minirl.mdp.state_distributions` (which keeps the absorbed mass in the terminal
states: on the other states the two agree). numpy float64 throughout, like minirl.mdp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from minirl.checks import check_int
from minirl.mdp import TabularMDP

__all__ = ["FiniteHorizonEvaluation", "time_indexed_policy", "evaluate_finite_horizon"]


@dataclass(frozen=True)
class FiniteHorizonEvaluation:
    """What one forward pass computes, per initial distribution (row of d_0)."""

    reward: np.ndarray
    """E_pi[sum_{t<T} R(s_t, a_t)], (X,)."""
    kl: np.ndarray | None
    """KL(p^pi || p^q) of the trajectory distributions, (X,); +inf off q's support; None without q."""
    d: np.ndarray
    """d_t(s): the probability that the episode has not ended and is in s at step t, (T, X, S)."""


def time_indexed_policy(pi: np.ndarray, horizon: int, n_states: int, n_actions: int,
                        field: str = "pi") -> np.ndarray:
    """``pi`` as a (T, S, A) float64 table: (S, A) and (1, S, A) are broadcast over the T steps, (H >= T, S, A)
    is cut to T. Every row must be a distribution (to 1e-6)."""
    T = check_int(horizon, "horizon", 1)
    table = np.asarray(pi, dtype=np.float64)
    if table.ndim == 2:
        table = table[None]
    if table.ndim != 3 or table.shape[1:] != (n_states, n_actions) or not (table.shape[0] == 1 or
                                                                          table.shape[0] >= T):
        raise ValueError(f"{field}: must have shape (S, A), (1, S, A) or (H >= T, S, A) with S = {n_states}, "
                         f"A = {n_actions}, T = {T}; got {tuple(table.shape)}")
    if not np.all(np.isfinite(table)) or (table < 0).any() or not np.allclose(table.sum(-1), 1.0, atol=1e-6):
        raise ValueError(f"{field}: every row pi_t(. | s) must be a probability distribution")
    return np.broadcast_to(table, (T, n_states, n_actions)) if table.shape[0] == 1 else table[:T]


def evaluate_finite_horizon(mdp: TabularMDP, pi: np.ndarray, q: np.ndarray | None = None,
                            d0: np.ndarray | None = None, R: np.ndarray | None = None,
                            horizon: int | None = None) -> FiniteHorizonEvaluation:
    """E_pi[R] and KL(pi || q) exactly, by the forward recursion of the module docstring.

    Args:
        mdp: P, the terminal states (absorbing ends; none if ``mdp.terminal`` is None), R and rho0 by default.
        pi: the evaluated policy, (S, A) or time-indexed (H >= T, S, A).
        q: the other policy of the KL, same shapes; None skips the KL.
        d0: initial distributions, (X, S) (one row per prompt) or (S,); default ``mdp.rho0``.
        R: reward table (S, A); default ``mdp.R`` (then the MDP must have one).
        horizon: T; default ``mdp.horizon``.
    Returns:
        :class:`FiniteHorizonEvaluation` with reward (X,), kl (X,) or None, d (T, X, S).
    """
    T = check_int(mdp.horizon if horizon is None else horizon, "horizon", 1)
    S, A = mdp.n_states, mdp.n_actions
    R = mdp.R if R is None else np.asarray(R, dtype=np.float64)
    if R is None or R.shape != (S, A) or not np.all(np.isfinite(R)):
        raise ValueError(f"R: need a finite reward table of shape (S, A) = {(S, A)} (the MDP has none)")
    pi = time_indexed_policy(pi, T, S, A, "pi")
    q = None if q is None else time_indexed_policy(q, T, S, A, "q")
    d = np.array(mdp.rho0 if d0 is None else d0, dtype=np.float64)
    d = d[None] if d.ndim == 1 else d  # (X, S)
    if d.ndim != 2 or d.shape[1] != S or (d < 0).any() or not np.allclose(d.sum(-1), 1.0, atol=1e-6):
        raise ValueError(f"d0: must be distributions over the {S} states, shape (X, S) or (S,)")
    ended = np.zeros(S, dtype=bool) if mdp.terminal is None else mdp.terminal
    d[:, ended] = 0.0  # an episode that starts in a terminal state has already ended
    reward, kl = np.zeros(len(d)), None if q is None else np.zeros(len(d))
    history = np.zeros((T, *d.shape))
    for t in range(T):
        history[t] = d
        reward += d @ (pi[t] * R).sum(-1)  # sum_s d_t(s) sum_a pi_t(a|s) R(s, a)
        if q is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_ratio = np.log(pi[t]) - np.log(q[t])  # (S, A); +inf where q = 0 < pi
                kl_state = np.where(pi[t] > 0, pi[t] * log_ratio, 0.0).sum(-1)  # KL at each state, (S,)
                kl += np.where(d > 0, d * kl_state, 0.0).sum(-1)  # unreachable states contribute nothing
        d = mdp.next_distribution(d, pi[t])  # d_{t+1}(s') = sum_{s,a} d_t(s) pi_t(a|s) P(s'|s,a)
        d[:, ended] = 0.0  # absorbing ends: the episode has ended, its mass leaves
    return FiniteHorizonEvaluation(reward=reward, kl=kl, d=history)
