"""Tests for minirl.mdp: every solver is checked against an independent oracle.

Oracles used (docs/equations.md §1 and §6): brute force over all deterministic policies, plain
iterative evaluation, the Bellman flow constraint and the occupancy/value duality, Monte-Carlo
rollouts, the entropy-regularised evaluation of the soft policy, enumeration of all action
sequences for the KL-regularised finite-horizon optimum, closed-form CliffWalking values and
returns measured in the real gymnasium toy-text environments.
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from minirl.envs import TabularVectorEnv
from minirl.mdp import (
    TabularMDP,
    from_gymnasium,
    greedy_policy,
    occupancy_measure,
    policy_evaluation,
    policy_iteration,
    soft_value_iteration,
    state_distributions,
    value_iteration,
)
from minirl.policies import TabularPolicy
from minirl.rollout import rollout

SEEDS = [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------

def random_mdp(seed: int, S: int = 6, A: int = 3, gamma: float = 0.9, **kwargs) -> TabularMDP:
    """A dense random MDP: Dirichlet(1) transition rows and rho0, standard-normal rewards."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))  # (S, A, S)
    R = rng.normal(size=(S, A))
    rho0 = rng.dirichlet(np.ones(S))
    return TabularMDP(P=P, R=R, rho0=rho0, gamma=gamma, **kwargs)


def random_policy(seed: int, S: int, A: int) -> np.ndarray:
    """A stochastic policy pi[s, a] with Dirichlet(1) rows."""
    return np.random.default_rng(seed + 1000).dirichlet(np.ones(A), size=S)


def brute_force_optimal_values(mdp: TabularMDP) -> np.ndarray:
    """max over all A^S deterministic policies of V^pi(s), each by its own linear solve."""
    S, A = mdp.n_states, mdp.n_actions
    policies = np.array(list(itertools.product(range(A), repeat=S)))  # (A^S, S)
    rows = np.arange(S)
    P_pi = mdp.P[rows, policies]  # (A^S, S, S)
    r_pi = mdp.R[rows, policies]  # (A^S, S)
    V_all = np.linalg.solve(np.eye(S) - mdp.gamma * P_pi, r_pi[..., None])[..., 0]  # (A^S, S)
    return V_all.max(axis=0)


def log_sum_exp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


# ----------------------------------------------------------------------------
# Optimal control: value iteration, policy iteration, policy evaluation
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("gamma", [0.9, 0.99])
@pytest.mark.parametrize("seed", SEEDS)
def test_value_iteration_policy_iteration_and_brute_force_agree(seed, gamma):
    mdp = random_mdp(seed, gamma=gamma)
    V_vi, Q_vi, pi_vi = value_iteration(mdp)
    V_pi, pi_pi = policy_iteration(mdp)
    V_star = brute_force_optimal_values(mdp)

    np.testing.assert_allclose(V_vi, V_star, atol=1e-6, rtol=0)
    np.testing.assert_allclose(V_pi, V_star, atol=1e-6, rtol=0)
    # The greedy policy of VI, evaluated exactly, is optimal too; so is PI's policy.
    np.testing.assert_allclose(policy_evaluation(mdp, pi_vi), V_star, atol=1e-6, rtol=0)
    np.testing.assert_allclose(policy_evaluation(mdp, pi_pi), V_star, atol=1e-6, rtol=0)
    # Bellman optimality residual and the returned Q / greedy policy.
    backup = (mdp.R + mdp.gamma * mdp.P @ V_vi).max(axis=1)
    assert np.max(np.abs(backup - V_vi)) < 1e-8
    np.testing.assert_allclose(Q_vi, mdp.R + mdp.gamma * mdp.P @ V_vi, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(pi_vi, greedy_policy(Q_vi))
    assert set(np.unique(pi_vi)) == {0.0, 1.0} and np.all(pi_vi.sum(1) == 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_policy_evaluation_matches_iterative_evaluation(seed):
    mdp = random_mdp(seed)
    pi = random_policy(seed, mdp.n_states, mdp.n_actions)
    # Independent oracle: iterate V <- sum_a pi(a|s) [R(s,a) + gamma sum_s' P(s'|s,a) V(s')].
    V = np.zeros(mdp.n_states)
    for _ in range(600):  # 0.9^600 ~ 1e-28
        V = (pi * (mdp.R + mdp.gamma * mdp.P @ V)).sum(axis=1)
    np.testing.assert_allclose(policy_evaluation(mdp, pi), V, atol=1e-10, rtol=0)
    # An explicit reward argument overrides mdp.R, and is required for an MDP\R.
    R2 = np.random.default_rng(seed).normal(size=mdp.R.shape)
    np.testing.assert_allclose(policy_evaluation(mdp.without_reward(), pi, R=R2),
                               policy_evaluation(mdp.with_reward(R2), pi), atol=1e-12, rtol=0)
    assert not np.allclose(policy_evaluation(mdp, pi, R=R2), V)  # R2 really was used


def test_solvers_accept_reward_argument_for_mdp_without_reward():
    mdp = random_mdp(7)
    V, _, pi = value_iteration(mdp)
    V2, _, pi2 = value_iteration(mdp.without_reward(), R=mdp.R)
    np.testing.assert_allclose(V2, V, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(pi2, pi)
    V3, _ = policy_iteration(mdp.without_reward(), R=mdp.R)
    np.testing.assert_allclose(V3, V, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------
# Occupancy measures (unnormalised: sums to 1 / (1 - gamma), or sum_{t<T} gamma^t)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_occupancy_infinite_horizon(seed):
    mdp = random_mdp(seed)
    pi = random_policy(seed, mdp.n_states, mdp.n_actions)
    rho = occupancy_measure(mdp, pi)
    assert rho.shape == (mdp.n_states, mdp.n_actions)
    assert np.all(rho >= 0)
    assert rho.sum() == pytest.approx(1 / (1 - mdp.gamma), abs=1e-10)

    # sum_t gamma^t d_t(s) pi(a|s), with d_t from state_distributions over a long horizon.
    T = 500  # 0.9^500 ~ 1e-23
    d = state_distributions(mdp, pi, T)  # (T, S)
    np.testing.assert_allclose(d.sum(axis=1), 1.0, atol=1e-12)
    rho_sum = np.einsum("t,ts,sa->sa", mdp.gamma ** np.arange(T), d, pi)
    np.testing.assert_allclose(rho, rho_sum, atol=1e-10, rtol=0)

    # Bellman flow constraint (the dual LP's feasibility):
    # sum_a rho(s', a) = rho0(s') + gamma sum_{s,a} P(s'|s,a) rho(s,a).
    np.testing.assert_allclose(rho.sum(1), mdp.rho0 + mdp.gamma * np.einsum("sat,sa->t", mdp.P, rho),
                               atol=1e-10, rtol=0)

    # Occupancy / value duality: V^pi(rho0) = sum_{s,a} rho(s,a) R(s,a).
    assert mdp.rho0 @ policy_evaluation(mdp, pi) == pytest.approx((rho * mdp.R).sum(), abs=1e-10)


@pytest.mark.parametrize("gamma", [0.9, 1.0])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_occupancy_finite_horizon(seed, gamma):
    T = 7
    mdp = random_mdp(seed, gamma=gamma)
    S, A = mdp.n_states, mdp.n_actions
    pi = random_policy(seed, S, A)
    pi_t = np.random.default_rng(seed).dirichlet(np.ones(A), size=(T, S))  # time-indexed (T, S, A)
    for policy in (pi, pi_t):
        rho = occupancy_measure(mdp, policy, horizon=T)
        assert rho.sum() == pytest.approx(sum(gamma ** t for t in range(T)), abs=1e-12)
        # Duality with an independent backward recursion V_t = r_pi_t + gamma P_pi_t V_{t+1}, V_T = 0.
        V = np.zeros(S)
        for t in reversed(range(T)):
            p = policy[t] if policy.ndim == 3 else policy
            V = (p * (mdp.R + gamma * mdp.P @ V)).sum(axis=1)
        assert mdp.rho0 @ V == pytest.approx((rho * mdp.R).sum(), abs=1e-12)
    # The two policies differ, and so do their occupancies: the time index is used.
    assert not np.allclose(occupancy_measure(mdp, pi, horizon=T), occupancy_measure(mdp, pi_t, horizon=T))


def test_occupancy_finite_horizon_matches_monte_carlo():
    """rho_T(s,a) = E[sum_{t<T} gamma^t 1[s_t = s, a_t = a]], estimated from 20000 sampled episodes.

    Per entry, the estimate's standard error is std_episodes / sqrt(n); we allow 4.5 standard errors
    (for 18 entries a false failure has probability ~1e-4; the seed is fixed anyway), and a global
    max abs error of 0.02.
    """
    T, n = 10, 20_000
    mdp = random_mdp(11).replace(horizon=T)
    S, A = mdp.n_states, mdp.n_actions
    pi = random_policy(11, S, A)
    batch = rollout(TabularVectorEnv(mdp, num_envs=n), TabularPolicy.from_table(pi), n_episodes=n, seed=0)
    assert batch.batch_size == n and bool(torch.all(batch.lengths == T))  # no terminal states: all truncated at T

    obs, act = batch.obs.numpy(), batch.actions.numpy()  # (n, T)
    per_episode = np.zeros((n, S, A))
    np.add.at(per_episode, (np.arange(n)[:, None], obs, act), mdp.gamma ** np.arange(T)[None, :])
    mc = per_episode.mean(axis=0)
    se = per_episode.std(axis=0, ddof=1) / np.sqrt(n)
    exact = occupancy_measure(mdp, pi, horizon=T)
    assert np.all(se > 0)
    assert np.all(np.abs(mc - exact) <= 4.5 * se), np.max(np.abs(mc - exact) / se)
    assert np.max(np.abs(mc - exact)) < 0.02


# ----------------------------------------------------------------------------
# Soft (maximum-entropy / KL-regularised) value iteration
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_soft_value_iteration_tends_to_value_iteration(seed):
    mdp = random_mdp(seed)
    V_star, _, _ = value_iteration(mdp)
    gaps = []
    for alpha in [1.0, 0.1, 0.01, 0.001]:
        V_soft = soft_value_iteration(mdp, alpha).V
        gap = V_soft - V_star
        # max_a Q <= alpha log sum_a exp(Q/alpha) <= max_a Q + alpha log A, compounded over 1/(1-gamma).
        assert np.all(gap >= -1e-8)
        assert np.all(gap <= alpha * np.log(mdp.n_actions) / (1 - mdp.gamma) + 1e-8)
        gaps.append(np.max(gap))
    # Strictly shrinking until the gap is below the solvers' own tolerance (tol=1e-10 moves V by
    # gamma tol / (1 - gamma) ~ 1e-9): there both sit at rounding noise, and equal is as small.
    assert all(a > b or b < 1e-9 for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.001 * np.log(mdp.n_actions) / (1 - mdp.gamma)


@pytest.mark.parametrize("alpha", [0.05, 1.0, 5.0])
@pytest.mark.parametrize("seed", SEEDS[:3])
def test_soft_value_iteration_fixed_point_and_policy(seed, alpha):
    mdp = random_mdp(seed)
    sol = soft_value_iteration(mdp, alpha)
    Q, V, pi = sol.Q, sol.V, sol.pi
    np.testing.assert_allclose(Q, mdp.R + mdp.gamma * mdp.P @ V, atol=1e-8, rtol=0)
    np.testing.assert_allclose(V, alpha * log_sum_exp(Q / alpha), atol=1e-8, rtol=0)
    np.testing.assert_allclose(pi, np.exp((Q - V[:, None]) / alpha), atol=1e-10, rtol=0)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-12)
    # The soft value is the value of the soft policy under the entropy-regularised reward
    # r - alpha log pi, and no other policy does better on that objective.
    V_reg = policy_evaluation(mdp, pi, R=mdp.R - alpha * np.log(pi))
    np.testing.assert_allclose(V_reg, V, atol=1e-7, rtol=0)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        other = rng.dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)
        assert np.all(policy_evaluation(mdp, other, R=mdp.R - alpha * np.log(other)) <= V + 1e-9)


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_soft_value_iteration_with_prior_infinite_horizon(seed):
    alpha = 0.5
    mdp = random_mdp(seed)
    prior = random_policy(seed + 7, mdp.n_states, mdp.n_actions)
    sol = soft_value_iteration(mdp, alpha, prior=prior)
    np.testing.assert_allclose(sol.V, alpha * log_sum_exp(sol.Q / alpha + np.log(prior)), atol=1e-8, rtol=0)
    np.testing.assert_allclose(sol.pi, prior * np.exp((sol.Q - sol.V[:, None]) / alpha), atol=1e-10, rtol=0)
    np.testing.assert_allclose(sol.pi.sum(axis=1), 1.0, atol=1e-12)
    # Value of reward minus alpha KL(pi || prior), per step.
    V_reg = policy_evaluation(mdp, sol.pi, R=mdp.R - alpha * np.log(sol.pi / prior))
    np.testing.assert_allclose(V_reg, sol.V, atol=1e-7, rtol=0)


def _deterministic_mdp_with_prior(gamma: float):
    """A tiny MDP with deterministic transitions s' = nxt[s, a], a reward and a prior pi_ref."""
    S, A = 4, 3
    rng = np.random.default_rng(123)
    nxt = rng.integers(S, size=(S, A))  # deterministic transitions s' = nxt[s, a]
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
    R = rng.normal(size=(S, A))
    prior = rng.dirichlet(np.ones(A), size=S)
    prior[0] = [0.0, 0.3, 0.7]  # an action the prior forbids must stay forbidden
    return TabularMDP(P=P, R=R, rho0=np.full(S, 1 / S), gamma=gamma), nxt, prior


@pytest.mark.parametrize("alpha", [0.5, 2.0])
def test_soft_value_iteration_finite_horizon_matches_enumeration(alpha):
    """docs/equations.md §6 (gamma = 1): V_0(s0) = alpha log sum_traj pi_ref(traj) exp(sum_t r_t / alpha),
    and the time-indexed soft policy samples traj with probability pi_ref(traj) exp(G/alpha) / Z."""
    T, gamma = 4, 1.0
    mdp, nxt, prior = _deterministic_mdp_with_prior(gamma)
    S, A, R = mdp.n_states, mdp.n_actions, mdp.R
    sol = soft_value_iteration(mdp, alpha, prior=prior, horizon=T)
    assert sol.Q.shape == (T, S, A) and sol.V.shape == (T + 1, S) and sol.pi.shape == (T, S, A)
    np.testing.assert_array_equal(sol.V[T], 0.0)
    np.testing.assert_allclose(sol.pi.sum(axis=-1), 1.0, atol=1e-12)
    assert np.all(sol.pi[:, 0, 0] == 0.0)

    for s0 in range(S):
        log_weights, log_pi_traj = [], []
        for actions in itertools.product(range(A), repeat=T):
            s, G, log_ref, log_pi = s0, 0.0, 0.0, 0.0
            for t, a in enumerate(actions):
                G += gamma ** t * R[s, a]
                with np.errstate(divide="ignore"):
                    log_ref += np.log(prior[s, a])
                    log_pi += np.log(sol.pi[t, s, a])
                s = nxt[s, a]
            log_weights.append(log_ref + G / alpha)
            log_pi_traj.append(log_pi)
        log_weights, log_pi_traj = np.array(log_weights), np.array(log_pi_traj)
        log_Z = log_sum_exp(log_weights[np.isfinite(log_weights)], axis=0)
        assert sol.V[0, s0] == pytest.approx(alpha * log_Z, abs=1e-10)
        np.testing.assert_allclose(np.exp(log_pi_traj), np.exp(log_weights - log_Z), atol=1e-12, rtol=1e-9)


def _regularised_value(mdp: TabularMDP, pi_t: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """E[sum_{t<T} gamma^t (r_t - alpha KL(pi_t(.|s_t) || prior(.|s_t)))] by backward recursion, (S,)."""
    V = np.zeros(mdp.n_states)
    for t in reversed(range(pi_t.shape[0])):
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.where(pi_t[t] > 0, np.log(pi_t[t] / prior), 0.0)
        V = (pi_t[t] * (mdp.R - alpha * log_ratio + mdp.gamma * mdp.P @ V)).sum(axis=1)
    return V


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_soft_value_iteration_finite_horizon_is_kl_regularised_optimum(gamma):
    """With any gamma, V_0 is the best value of sum_t gamma^t (r_t - alpha KL_t), attained by pi_t.

    (For gamma < 1 the trajectory-level formula above no longer holds: the KL terms are
    discounted too, so the oracle is the regularised objective itself.)"""
    T, alpha = 5, 0.7
    mdp, _, prior = _deterministic_mdp_with_prior(gamma)
    mdp = mdp.replace(P=np.random.default_rng(5).dirichlet(np.ones(mdp.n_states), size=prior.shape))
    sol = soft_value_iteration(mdp, alpha, prior=prior, horizon=T)
    np.testing.assert_allclose(sol.pi.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(_regularised_value(mdp, sol.pi, prior, alpha), sol.V[0], atol=1e-10, rtol=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        other = rng.dirichlet(np.ones(mdp.n_actions), size=(T, mdp.n_states)) * (prior > 0)
        other /= other.sum(axis=-1, keepdims=True)
        assert np.all(_regularised_value(mdp, other, prior, alpha) <= sol.V[0] + 1e-10)


# ----------------------------------------------------------------------------
# Validation: every bad input names its field
# ----------------------------------------------------------------------------

def _valid_kwargs() -> dict:
    S, A = 3, 2
    P = np.full((S, A, S), 1 / S)
    return dict(P=P, R=np.zeros((S, A)), rho0=np.full(S, 1 / S), gamma=0.9)


def _with(**changes) -> dict:
    kwargs = _valid_kwargs()
    kwargs.update(changes)
    return kwargs


def _P_negative():
    P = np.full((3, 2, 3), 1 / 3)
    P[1, 0] = [1.5, -0.5, 0.0]  # sums to 1, but negative
    return P


def _P_bad_row():
    P = np.full((3, 2, 3), 1 / 3)
    P[2, 1] = [0.5, 0.2, 0.2]
    return P


def _P_absorbing_last():
    P = np.full((3, 2, 3), 1 / 3)
    P[2, :, :] = [0.0, 0.0, 1.0]
    return P


_INVALID = {
    "P 2-d": (_with(P=np.full((3, 3), 1 / 3)), r"^P: must have shape"),
    "P not square in states": (_with(P=np.full((3, 2, 4), 1 / 4)), r"^P: must have shape"),
    "P negative": (_with(P=_P_negative()), r"^P: .*non-negative"),
    "P nan": (_with(P=np.where(np.eye(3)[:, None, :] > 0, np.nan, 0.5)), r"^P: .*finite"),
    "P row sum": (_with(P=_P_bad_row()), r"^P: .*P\[2, 1, :\] sums to 0\.9"),
    "R shape": (_with(R=np.zeros((2, 3))), r"^R: must have shape"),
    "R nan": (_with(R=np.array([[0.0, np.nan]] * 3)), r"^R: .*finite"),
    "R inf": (_with(R=np.array([[0.0, np.inf]] * 3)), r"^R: .*finite"),
    "rho0 shape": (_with(rho0=np.full(4, 0.25)), r"^rho0: must have shape"),
    "rho0 sum": (_with(rho0=np.array([0.5, 0.2, 0.2])), r"^rho0: .*sums to 1"),
    "rho0 negative": (_with(rho0=np.array([1.5, -0.5, 0.0])), r"^rho0: .*non-negative"),
    "gamma 0": (_with(gamma=0.0), r"^gamma: must be in \(0, 1\]"),
    "gamma 1.5": (_with(gamma=1.5), r"^gamma: must be in \(0, 1\]"),
    "gamma negative": (_with(gamma=-0.5), r"^gamma: must be in \(0, 1\]"),
    "horizon 0": (_with(horizon=0), r"^horizon: must be an integer >= 1"),
    "horizon negative": (_with(horizon=-3), r"^horizon: must be an integer >= 1"),
    "horizon 2.5": (_with(horizon=2.5), r"^horizon: must be an integer >= 1"),
    "horizon 3.0": (_with(horizon=3.0), r"^horizon: must be an integer >= 1"),  # a float, even a whole one
    "horizon True": (_with(horizon=True), r"^horizon: must be an integer >= 1"),  # a bool is not horizon 1
    "horizon inf": (_with(horizon=float("inf")), r"^horizon: must be an integer >= 1"),
    "horizon nan": (_with(horizon=float("nan")), r"^horizon: must be an integer >= 1"),
    "terminal shape": (_with(terminal=np.zeros(4, dtype=bool)), r"^terminal: must have shape"),
    "terminal not absorbing": (_with(terminal=np.array([False, True, False])), r"^terminal: .*state 1 must be absorbing"),
    "terminal with reward": (_with(P=_P_absorbing_last(), R=np.array([[0, 0], [0, 0], [0, 1.0]]),
                                   terminal=np.array([False, False, True])), r"^terminal: .*state 2 must have zero reward"),
    "state_names": (_with(state_names=("a", "b")), r"^state_names:"),
    "action_names": (_with(action_names=("x",)), r"^action_names:"),
}


@pytest.mark.parametrize("case", list(_INVALID))
def test_invalid_mdp_raises_naming_the_field(case):
    kwargs, pattern = _INVALID[case]
    with pytest.raises(ValueError, match=pattern):
        TabularMDP(**kwargs)


def test_valid_edge_cases_are_accepted():
    # The boundary values the validation must let through (so the cases above fail for their reason).
    TabularMDP(**_with(gamma=1.0, horizon=1))
    TabularMDP(**_with(horizon=np.int64(3)))
    TabularMDP(**_with(P=_P_absorbing_last(), terminal=np.array([False, False, True])))
    # Rows within the 1e-6 tolerance are accepted, then stored as exact distributions.
    P = np.full((3, 2, 3), 1 / 3)
    P[0, 0] = [0.5, 0.5 - 4e-7, 0.0]
    mdp = TabularMDP(**_with(P=P, rho0=np.array([0.2, 0.3, 0.5 + 5e-7])))
    np.testing.assert_allclose(mdp.P.sum(axis=2), 1.0, atol=1e-14, rtol=0)
    assert abs(mdp.rho0.sum() - 1.0) < 1e-14


def test_solver_misuse_raises_naming_the_field():
    mdp = random_mdp(0)
    pi = random_policy(0, mdp.n_states, mdp.n_actions)
    no_reward = mdp.without_reward()
    for solve in (lambda: value_iteration(no_reward), lambda: policy_iteration(no_reward),
                  lambda: policy_evaluation(no_reward, pi), lambda: soft_value_iteration(no_reward, 1.0),
                  lambda: soft_value_iteration(no_reward, 1.0, horizon=3)):
        with pytest.raises(ValueError, match=r"^R: .*without reward"):
            solve()
    with pytest.raises(ValueError, match=r"^R: must have shape"):
        value_iteration(mdp, R=np.zeros((2, 2)))

    undiscounted = mdp.replace(gamma=1.0)
    for solve in (lambda: policy_evaluation(undiscounted, pi), lambda: value_iteration(undiscounted),
                  lambda: policy_iteration(undiscounted), lambda: soft_value_iteration(undiscounted, 1.0),
                  lambda: occupancy_measure(undiscounted, pi)):
        with pytest.raises(ValueError, match=r"^gamma: .*needs gamma < 1"):
            solve()
    # ... but the finite-horizon versions accept gamma = 1.
    assert occupancy_measure(undiscounted, pi, horizon=4).sum() == pytest.approx(4.0)
    soft_value_iteration(undiscounted, 1.0, horizon=4)

    for bad_pi in (pi[:, :2], pi[None], np.ones_like(pi), -pi + 2 / 3):
        with pytest.raises(ValueError, match=r"^pi: "):
            policy_evaluation(mdp, bad_pi)
    with pytest.raises(ValueError, match=r"^pi: "):
        occupancy_measure(mdp, pi[None].repeat(3, axis=0))  # time-indexed needs a horizon
    with pytest.raises(ValueError, match=r"^pi: .*fewer than horizon"):
        state_distributions(mdp, pi[None].repeat(3, axis=0), horizon=4)
    with pytest.raises(ValueError, match=r"^pi: "):
        soft_value_iteration(mdp, 1.0, prior=pi * 2)

    for alpha in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"^alpha: "):
            soft_value_iteration(mdp, alpha)
    for horizon in (0, 2.5, float("inf")):
        with pytest.raises(ValueError, match=r"^horizon: "):
            soft_value_iteration(mdp, 1.0, horizon=horizon)
        with pytest.raises(ValueError, match=r"^horizon: "):
            state_distributions(mdp, pi, horizon)


def test_from_gymnasium_rejects_env_without_table():
    with pytest.raises(ValueError, match=r"^env: "):
        from_gymnasium(gym.make("CartPole-v1"))


# ----------------------------------------------------------------------------
# Value semantics
# ----------------------------------------------------------------------------

def test_without_reward_keeps_dynamics():
    mdp = random_mdp(3, horizon=12)
    bare = mdp.without_reward()
    assert bare.R is None
    np.testing.assert_array_equal(bare.P, mdp.P)
    np.testing.assert_array_equal(bare.rho0, mdp.rho0)
    assert (bare.gamma, bare.horizon) == (mdp.gamma, mdp.horizon)
    np.testing.assert_array_equal(bare.with_reward(mdp.R).R, mdp.R)


def test_mdp_arrays_are_read_only_copies():
    P = np.full((2, 2, 2), 0.5)
    R = np.zeros((2, 2))
    mdp = TabularMDP(P=P, R=R, rho0=np.array([1.0, 0.0]), gamma=0.9, terminal=np.array([False, False]))
    for arr in (mdp.P, mdp.R, mdp.rho0, mdp.terminal):
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = arr[0]
    P[0, 0] = [1.0, 0.0]  # mutating the caller's array does not reach the MDP
    R[0, 0] = 5.0
    assert mdp.P[0, 0, 0] == 0.5 and mdp.R[0, 0] == 0.0
    with pytest.raises(AttributeError):
        mdp.gamma = 0.5


# ----------------------------------------------------------------------------
# gymnasium toy-text environments
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1", "Taxi-v4"])
def test_from_gymnasium_table(env_id):
    env = gym.make(env_id)
    mdp = from_gymnasium(env, gamma=0.95)
    S = env.observation_space.n
    assert (mdp.n_states, mdp.n_actions) == (S + 1, env.action_space.n)
    assert np.all(mdp.P >= 0)
    np.testing.assert_allclose(mdp.P.sum(axis=2), 1.0, atol=1e-12)
    np.testing.assert_array_equal(mdp.terminal, np.arange(S + 1) == S)  # one added absorbing state
    np.testing.assert_array_equal(mdp.P[S, :, S], 1.0)
    np.testing.assert_array_equal(mdp.R[S], 0.0)
    np.testing.assert_allclose(mdp.rho0[:S], env.unwrapped.initial_state_distrib, atol=1e-15)
    assert mdp.rho0[S] == 0 and mdp.gamma == 0.95
    assert mdp.horizon == env.spec.max_episode_steps
    # Spot-check one entry against the env's own table: expected reward of (s, a).
    s, a = S // 2, 1
    assert mdp.R[s, a] == pytest.approx(sum(p * r for p, _, r, _ in env.unwrapped.P[s][a]))


def test_frozenlake_value_matches_monte_carlo():
    """Exact V*(start) vs the discounted return of the greedy policy in the real (slippery) env.

    3000 episodes; the tolerance is 4.5 standard errors of the mean. The episodes run without
    gymnasium's 100-step limit (5000 steps, 0.99^5000 ~ 1e-22), and the same episodes cut at
    100 steps must match the exact 100-step value sum_{s,a} rho_100(s,a) R(s,a) (the env's default).
    """
    gamma, n = 0.99, 3000
    mdp = from_gymnasium(gym.make("FrozenLake-v1"), gamma=gamma)
    V, _, pi = value_iteration(mdp)
    greedy = pi.argmax(axis=1)
    V_100 = (occupancy_measure(mdp, pi, horizon=100) * mdp.R).sum()
    assert V_100 < V[0] - 1e-3  # the two targets are really different

    env = gym.make("FrozenLake-v1", max_episode_steps=5000)
    full, cut = np.zeros(n), np.zeros(n)
    for i in range(n):
        s, _ = env.reset(seed=1234 if i == 0 else None)
        t, done = 0, False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(greedy[s]))
            full[i] += gamma ** t * r
            cut[i] += gamma ** t * r if t < 100 else 0.0
            t, done = t + 1, terminated or truncated
        assert terminated
    for returns, target in ((full, V[0]), (cut, V_100)):
        se = returns.std(ddof=1) / np.sqrt(n)
        assert abs(returns.mean() - target) < 4.5 * se, (returns.mean(), target, se)


def test_cliffwalking_value_closed_form_and_rollout():
    gamma = 0.99
    env = gym.make("CliffWalking-v1")
    mdp = from_gymnasium(env, gamma=gamma)
    V, _, pi = value_iteration(mdp)
    start = int(np.flatnonzero(mdp.rho0)[0])
    # Shortest safe path along the cliff: up, 11 x right, down = 13 steps of reward -1.
    assert V[start] == pytest.approx(-(1 - gamma ** 13) / (1 - gamma), abs=1e-8)
    s, _ = env.reset(seed=0)
    assert s == start
    G, t, done = 0.0, 0, False
    while not done:
        s, r, terminated, truncated, _ = env.step(int(pi[s].argmax()))
        G, t, done = G + gamma ** t * r, t + 1, terminated or truncated
    assert terminated and t == 13
    assert G == pytest.approx(V[start], abs=1e-6)


def test_taxi_value_matches_deterministic_rollouts():
    gamma = 0.99
    env = gym.make("Taxi-v4")
    mdp = from_gymnasium(env, gamma=gamma)
    V, _, pi = value_iteration(mdp)
    greedy = pi.argmax(axis=1)
    starts = set()
    for seed in range(8):
        s0, _ = env.reset(seed=seed)
        starts.add(int(s0))
        s, G, t, done = s0, 0.0, 0, False
        while not done:
            s, r, terminated, truncated, _ = env.step(int(greedy[s]))
            G, t, done = G + gamma ** t * r, t + 1, terminated or truncated
        assert terminated and t < 30
        assert G == pytest.approx(V[s0], abs=1e-6)
    assert len(starts) > 1  # different start states were really exercised


def test_soft_value_iteration_gives_terminal_states_no_entropy_bonus():
    """The env stops at a terminal state, so the soft value there is 0, not alpha log|A| / (1 - gamma)."""
    from minirl.envs import gridworld

    mdp = gridworld(slip=0.1)
    goal = np.flatnonzero(mdp.terminal)
    V_star, _, _ = value_iteration(mdp)
    for alpha in (1.0, 0.1):
        for horizon in (None, 30):
            sol = soft_value_iteration(mdp, alpha, horizon=horizon)
            V = sol.V if horizon is None else sol.V[0]
            assert np.all(V[goal] == 0.0)
        gap = soft_value_iteration(mdp, alpha).V - V_star
        assert np.all(gap >= -1e-9) and np.all(gap <= alpha * np.log(4) / (1 - mdp.gamma) + 1e-9)


# ----------------------------------------------------------------------------
# The backups at the speed of the matrix product (issue 16): same numbers, span stopping rule
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_expected_next_and_next_distribution_match_the_textbook_sums(seed):
    mdp = random_mdp(seed, S=7, A=4)
    rng = np.random.default_rng(seed)
    V = rng.normal(size=7)
    np.testing.assert_allclose(mdp.expected_next(V), np.einsum("sat,t->sa", mdp.P, V), atol=1e-12, rtol=0)
    pi = random_policy(seed, 7, 4)
    d = rng.dirichlet(np.ones(7), size=3)  # (X, S)
    want = d @ np.einsum("sa,sat->st", pi, mdp.P)  # d P_pi
    np.testing.assert_allclose(mdp.next_distribution(d, pi), want, atol=1e-12, rtol=0)
    np.testing.assert_allclose(mdp.next_distribution(d[0], pi), want[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("seed", SEEDS)
def test_value_iteration_equals_the_left_to_right_backup_to_1e12(seed):
    """The reordered product changes rounding only: same V, Q and policy as the old loop."""
    mdp = random_mdp(seed, S=9, A=3, gamma=0.95)
    V = np.zeros(9)
    for _ in range(100_000):  # the loop as it was written before issue 16
        V_new = (mdp.R + mdp.gamma * mdp.P @ V).max(axis=1)
        if np.max(np.abs(V_new - V)) < 1e-10:
            V = V_new
            break
        V = V_new
    V_vi, Q_vi, pi_vi = value_iteration(mdp)
    np.testing.assert_allclose(V_vi, V, atol=1e-12, rtol=0)
    np.testing.assert_allclose(Q_vi, mdp.R + mdp.gamma * mdp.P @ V, atol=1e-12, rtol=0)
    np.testing.assert_array_equal(pi_vi, greedy_policy(mdp.R + mdp.gamma * mdp.P @ V))


@pytest.mark.parametrize("gamma", [0.9, 0.99])
@pytest.mark.parametrize("seed", SEEDS)
def test_span_stopping_rule_keeps_its_guarantee_and_stops_sooner(seed, gamma):
    """sp(u) < tol: ||V - V*|| <= gamma tol / (2 (1 - gamma)) at the midpoint of MacQueen's bounds."""
    mdp = random_mdp(seed, gamma=gamma)
    V_star = brute_force_optimal_values(mdp)
    tol = 1e-4
    V, Q, pi = value_iteration(mdp, tol=tol, stop="span")
    assert np.max(np.abs(V - V_star)) <= gamma * tol / (2 * (1 - gamma)) + 1e-12
    np.testing.assert_allclose(Q, mdp.R + mdp.gamma * mdp.expected_next(V), atol=1e-9, rtol=0)
    np.testing.assert_allclose(policy_evaluation(mdp, pi), V_star, atol=gamma * tol / (1 - gamma))
    # Fewer backups: the span rule converges within a budget where the sup-norm rule does not.
    budget = next(k for k in range(1, 10_000) if _span_converges(mdp, tol, k))
    V_sup, _, _ = value_iteration(mdp, tol=tol, max_iter=budget)
    assert np.max(np.abs(V_sup - V_star)) > np.max(np.abs(V - V_star))


def _span_converges(mdp: TabularMDP, tol: float, k: int) -> bool:
    V = np.zeros(mdp.n_states)
    for _ in range(k):
        V_new = (mdp.R + mdp.gamma * mdp.expected_next(V)).max(axis=1)
        u, V = V_new - V, V_new
        if u.max() - u.min() < tol:
            return True
    return False


def test_value_iteration_rejects_an_unknown_stopping_rule():
    with pytest.raises(ValueError, match="stop"):
        value_iteration(random_mdp(0), stop="l2")


def test_mdp_shares_a_frozen_transition_tensor_and_copies_everything_else():
    mdp = random_mdp(2, horizon=5)
    assert mdp.with_reward(mdp.R * 2).P is mdp.P  # replace() does not copy P again
    assert mdp.without_reward().P is mdp.P
    P = np.array(mdp.P)  # writable: copied
    P.setflags(write=False)
    view = np.array(mdp.P)
    frozen_view = view[:]
    frozen_view.setflags(write=False)  # read-only, but its base is writable: copied
    for given in (P, frozen_view):
        other = TabularMDP(P=given, R=mdp.R, rho0=mdp.rho0, gamma=mdp.gamma)
        assert (other.P is given) == (given is P)
        np.testing.assert_array_equal(other.P, mdp.P)
    # A frozen P with a row off by 1e-7 is renormalised into a copy, not in place.
    off = np.array(mdp.P)
    off[0, 0] *= 1 + 1e-7
    off.setflags(write=False)
    fixed = TabularMDP(P=off, R=mdp.R, rho0=mdp.rho0, gamma=mdp.gamma)
    assert fixed.P is not off and abs(fixed.P[0, 0].sum() - 1) < 1e-15 and off[0, 0].sum() > 1 + 5e-8
    with pytest.raises(ValueError, match="P: entries must be finite"):
        bad = np.array(mdp.P)
        bad[1, 1, 1] = np.nan
        TabularMDP(P=bad, R=mdp.R, rho0=mdp.rho0, gamma=mdp.gamma)
