"""Public tests of a1 (MDPs without reward): value iteration, soft value iteration with a prior, and the
discounted occupancy measure, each against an answer computed here by another route.

Oracles: the optimal values by enumerating every deterministic policy and solving each one's Bellman
equation exactly; soft value iteration on a one-state MDP, where the fixed point has a closed form; the
occupancy measure by summing the discounted state distributions step by step (a power series, not a
linear solve).
"""

import itertools

import numpy as np
import pytest

from minirl.mdp import TabularMDP, occupancy_measure, soft_value_iteration, value_iteration


def random_mdp(seed: int, S: int = 4, A: int = 3, gamma: float = 0.9) -> TabularMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S) * 0.5, size=(S, A))  # (S, A, S)
    R = rng.normal(size=(S, A))
    return TabularMDP(P=P, R=R, rho0=rng.dirichlet(np.ones(S)), gamma=gamma)


def values_of(mdp: TabularMDP, pi: np.ndarray) -> np.ndarray:
    """V^pi by one linear solve, written out here: (I - gamma P_pi) V = r_pi."""
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    r_pi = (pi * mdp.R).sum(1)
    return np.linalg.solve(np.eye(mdp.n_states) - mdp.gamma * P_pi, r_pi)


def best_values_by_enumeration(mdp: TabularMDP) -> np.ndarray:
    """max over all A^S deterministic policies of V^pi, state by state (an optimal policy attains it everywhere)."""
    best = np.full(mdp.n_states, -np.inf)
    for actions in itertools.product(range(mdp.n_actions), repeat=mdp.n_states):
        pi = np.eye(mdp.n_actions)[list(actions)]
        best = np.maximum(best, values_of(mdp, pi))
    return best


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_value_iteration_reaches_the_best_deterministic_policy(seed):
    mdp = random_mdp(seed)
    expected = best_values_by_enumeration(mdp)
    V, Q, pi = value_iteration(mdp, tol=1e-12)
    np.testing.assert_allclose(V, expected, rtol=0, atol=1e-8)


def one_state_soft_value(R: np.ndarray, prior: np.ndarray, alpha: float, gamma: float) -> float:
    """One state, every action returns to it: V = alpha log sum_a prior_a exp((R_a + gamma V) / alpha)
    gives V (1 - gamma) = alpha log sum_a prior_a exp(R_a / alpha)."""
    return alpha * np.log(np.sum(prior * np.exp(R / alpha))) / (1 - gamma)


@pytest.mark.points(2)
def test_soft_value_iteration_with_a_prior_on_one_state():
    R = np.array([[1.0, 0.0, -0.5]])
    prior = np.array([[0.2, 0.5, 0.3]])
    alpha, gamma = 0.7, 0.8
    mdp = TabularMDP(P=np.ones((1, 3, 1)), R=R, rho0=np.ones(1), gamma=gamma)
    sol = soft_value_iteration(mdp, alpha, prior=prior, tol=1e-13)
    np.testing.assert_allclose(sol.V[0], one_state_soft_value(R[0], prior[0], alpha, gamma), rtol=0, atol=1e-9)
    # The optimal policy tilts the prior by exp(R / alpha) (docs/equations.md §6).
    tilted = prior[0] * np.exp(R[0] / alpha)
    np.testing.assert_allclose(sol.pi[0], tilted / tilted.sum(), rtol=0, atol=1e-12)


@pytest.mark.points(2)
def test_occupancy_measure_is_the_discounted_sum_of_visits():
    mdp = random_mdp(3, S=5, A=2, gamma=0.8)
    pi = np.random.default_rng(4).dirichlet(np.ones(2), size=5)
    P_pi = np.einsum("sa,sat->st", pi, mdp.P)
    d, expected = mdp.rho0.copy(), np.zeros(5)
    for t in range(400):  # 0.8^400 ~ 1e-39: the tail is far below the tolerance
        expected += mdp.gamma ** t * d
        d = d @ P_pi
    np.testing.assert_allclose(occupancy_measure(mdp, pi), expected[:, None] * pi, rtol=0, atol=1e-10)
