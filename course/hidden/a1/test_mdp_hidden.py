"""Hidden tests of a1: the greedy policy and Q of value iteration, the optimality of soft value
iteration with a prior (its values are the regularised values of its own policy, and no other policy
does better), soft backward induction against enumeration of action sequences, and the finite-horizon
occupancy against enumeration of every trajectory.
"""

import itertools

import numpy as np
import pytest

from minirl.mdp import TabularMDP, occupancy_measure, soft_value_iteration, value_iteration


def random_mdp(seed: int, S: int = 4, A: int = 3, gamma: float = 0.9) -> TabularMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S) * 0.5, size=(S, A))
    R = rng.normal(size=(S, A))
    return TabularMDP(P=P, R=R, rho0=rng.dirichlet(np.ones(S)), gamma=gamma)


def values_of(mdp: TabularMDP, pi: np.ndarray, r: np.ndarray) -> np.ndarray:
    """V^pi for the state reward r[s] = sum_a pi(a|s) (...) given directly, by a linear solve."""
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    return np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, r)


def regularised_values(mdp: TabularMDP, pi: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """V^pi of the reward R - alpha KL(pi(.|s) || prior(.|s)), exactly."""
    kl = np.where(pi > 0, pi * (np.log(np.where(pi > 0, pi, 1.0)) - np.log(prior)), 0.0).sum(1)
    return values_of(mdp, pi, (pi * mdp.R).sum(1) - alpha * kl)


@pytest.mark.points(2)
def test_value_iteration_q_and_greedy_policy():
    mdp = random_mdp(7, S=3, A=3, gamma=0.95)
    V, Q, pi = value_iteration(mdp, tol=1e-12)
    # Q must be the one-step look-ahead of V, and the greedy policy must attain V.
    np.testing.assert_allclose(Q, mdp.R + mdp.gamma * np.einsum("sat,t->sa", mdp.P, V), rtol=0, atol=1e-9)
    best = -np.inf * np.ones(3)
    for actions in itertools.product(range(3), repeat=3):
        det = np.eye(3)[list(actions)]
        best = np.maximum(best, values_of(mdp, det, (det * mdp.R).sum(1)))
    np.testing.assert_allclose(values_of(mdp, pi, (pi * mdp.R).sum(1)), best, rtol=0, atol=1e-8)


@pytest.mark.points(2)
def test_soft_value_iteration_with_a_prior_is_optimal():
    mdp = random_mdp(11, S=4, A=3, gamma=0.85)
    rng = np.random.default_rng(12)
    prior = rng.dirichlet(np.ones(3), size=4)
    alpha = 0.5
    sol = soft_value_iteration(mdp, alpha, prior=prior, tol=1e-13)
    # Its values are the regularised values of its own policy ...
    np.testing.assert_allclose(sol.V, regularised_values(mdp, sol.pi, prior, alpha), rtol=0, atol=1e-8)
    # ... and no other policy has larger regularised values anywhere.
    for _ in range(50):
        other = rng.dirichlet(np.ones(3), size=4)
        assert np.all(regularised_values(mdp, other, prior, alpha) <= sol.V + 1e-9)


@pytest.mark.points(2)
def test_soft_backward_induction_matches_enumeration():
    # Deterministic dynamics, gamma = 1: V_0(s) = alpha log sum over action sequences of
    # prod_t prior(a_t|s_t) exp(sum_t R(s_t, a_t) / alpha).
    S, A, T, alpha = 3, 2, 3, 0.6
    rng = np.random.default_rng(5)
    nxt = rng.integers(0, S, size=(S, A))
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
    R = rng.normal(size=(S, A))
    prior = rng.dirichlet(np.ones(A), size=S)
    mdp = TabularMDP(P=P, R=R, rho0=np.ones(S) / S, gamma=1.0)
    sol = soft_value_iteration(mdp, alpha, prior=prior, horizon=T)
    for s0 in range(S):
        total = 0.0
        for actions in itertools.product(range(A), repeat=T):
            s, weight, ret = s0, 1.0, 0.0
            for a in actions:
                weight *= prior[s, a]
                ret += R[s, a]
                s = nxt[s, a]
            total += weight * np.exp(ret / alpha)
        np.testing.assert_allclose(sol.V[0, s0], alpha * np.log(total), rtol=0, atol=1e-10)


@pytest.mark.points(2)
def test_finite_horizon_occupancy_by_enumerating_trajectories():
    mdp = random_mdp(21, S=3, A=2, gamma=0.9)
    T = 4
    pi = np.random.default_rng(22).dirichlet(np.ones(2), size=(T, 3))  # time-indexed
    expected = np.zeros((3, 2))
    for states in itertools.product(range(3), repeat=T):
        for actions in itertools.product(range(2), repeat=T):
            p = mdp.rho0[states[0]]
            for t in range(T):
                p *= pi[t, states[t], actions[t]]
                if t + 1 < T:
                    p *= mdp.P[states[t], actions[t], states[t + 1]]
            for t in range(T):
                expected[states[t], actions[t]] += mdp.gamma ** t * p
    np.testing.assert_allclose(occupancy_measure(mdp, pi, horizon=T), expected, rtol=0, atol=1e-12)
