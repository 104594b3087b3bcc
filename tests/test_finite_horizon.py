"""minirl.finite_horizon: the exact forward evaluation against enumeration of every trajectory, and against
minirl.mdp.state_distributions where the two overlap (docs/equations.md §1, §6)."""

import itertools
import math

import numpy as np
import pytest

from minirl.finite_horizon import evaluate_finite_horizon, time_indexed_policy
from minirl.mdp import TabularMDP, state_distributions

S, A, T = 4, 3, 4
END = 3  # the terminal state


def tiny_mdp(seed: int = 0) -> TabularMDP:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    P[END] = 0.0
    P[END, :, END] = 1.0  # absorbing
    R = rng.normal(size=(S, A))
    R[END] = 0.0  # zero reward at the end
    terminal = np.zeros(S, dtype=bool)
    terminal[END] = True
    return TabularMDP(P=P, R=R, rho0=np.array([0.5, 0.3, 0.2, 0.0]), gamma=1.0, horizon=T, terminal=terminal)


def random_policy(rng, zeros: bool = False) -> np.ndarray:
    pi = rng.dirichlet(np.ones(A), size=(T, S))
    if zeros:  # some actions impossible: exercises the off-support rule
        pi[:, 0, 2] = 0.0
        pi /= pi.sum(-1, keepdims=True)
    return pi


def enumerate_trajectories(mdp: TabularMDP, pi: np.ndarray, q: np.ndarray, s0: int):
    """(E[R], KL(p^pi || p^q)) by listing every (a_0, s_1, ..., a_{T-1}) path from s0, stopping at the end state."""
    reward, kl = 0.0, 0.0

    def walk(s: int, t: int, p_pi: float, log_ratio: float, ret: float) -> None:
        nonlocal reward, kl
        if t == T or s == END:
            reward += p_pi * ret
            if p_pi > 0:
                kl += p_pi * log_ratio
            return
        for a in range(A):
            if pi[t, s, a] == 0:
                continue
            lr = math.inf if q[t, s, a] == 0 else math.log(pi[t, s, a] / q[t, s, a])
            for s2 in range(S):
                if mdp.P[s, a, s2] > 0:
                    walk(s2, t + 1, p_pi * pi[t, s, a] * mdp.P[s, a, s2], log_ratio + lr, ret + mdp.R[s, a])

    walk(s0, 0, 1.0, 0.0, 0.0)
    return reward, kl


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_pass_equals_enumeration_of_every_trajectory(seed):
    mdp = tiny_mdp(seed)
    rng = np.random.default_rng(100 + seed)
    pi, q = random_policy(rng), random_policy(rng)
    d0 = np.eye(S)[:3]  # one "prompt" per start state
    ev = evaluate_finite_horizon(mdp, pi, q, d0=d0)
    for x in range(3):
        reward, kl = enumerate_trajectories(mdp, pi, q, x)
        assert ev.reward[x] == pytest.approx(reward, abs=1e-12)
        assert ev.kl[x] == pytest.approx(kl, abs=1e-12)
    # the rho0 mixture is the rho0-weighted average of the per-start values (the KL of a mixture over prompts)
    mix = evaluate_finite_horizon(mdp, pi, q)
    assert mix.reward[0] == pytest.approx(mdp.rho0[:3] @ ev.reward, abs=1e-12)
    assert mix.kl[0] == pytest.approx(mdp.rho0[:3] @ ev.kl, abs=1e-12)
    assert evaluate_finite_horizon(mdp, pi, pi).kl == pytest.approx(0.0, abs=1e-15)


def test_off_support_is_infinite_only_where_reached():
    mdp = tiny_mdp(0)
    rng = np.random.default_rng(5)
    pi, q = random_policy(rng), random_policy(rng, zeros=True)  # q never takes action 2 in state 0
    ev = evaluate_finite_horizon(mdp, pi, q, d0=np.eye(S)[:3])
    for x in range(3):
        assert ev.kl[x] == enumerate_trajectories(mdp, pi, q, x)[1] == math.inf  # state 0 is reached from each
    # the other way round q's zeros are pi's zeros: 0 log 0 = 0, finite
    assert np.isfinite(evaluate_finite_horizon(mdp, q, pi).kl).all()
    # an episode that starts at the end has ended: nothing is counted, whatever q does there
    assert evaluate_finite_horizon(mdp, pi, q, d0=np.eye(S)[END]).kl[0] == 0.0
    # a state nobody reaches contributes nothing: q off pi's support only in an unreached state
    unreached = tiny_mdp(0).P.copy()
    unreached[:, :, 0] = 0.0
    unreached[:, :, 1] += tiny_mdp(0).P[:, :, 0]  # nothing ever moves into state 0
    m2 = TabularMDP(P=unreached, R=mdp.R, rho0=np.array([0.0, 1.0, 0.0, 0.0]), gamma=1.0, horizon=T,
                    terminal=mdp.terminal)
    kl = evaluate_finite_horizon(m2, pi, q).kl[0]
    assert np.isfinite(kl) and kl == pytest.approx(enumerate_trajectories(m2, pi, q, 1)[1], abs=1e-12)


def test_state_distributions_agree_with_minirl_mdp_off_the_end():
    mdp = tiny_mdp(1)
    pi = random_policy(np.random.default_rng(7))
    d = evaluate_finite_horizon(mdp, pi).d[:, 0]  # (T, S)
    ref = state_distributions(mdp, pi, T)  # keeps the absorbed mass in END
    np.testing.assert_allclose(d[:, :END], ref[:, :END], atol=1e-15)
    assert (d[1:, END] == 0).all() and (np.diff(ref[:, END]) >= -1e-15).all()
    # expected reward is the occupancy-weighted reward: sum_t sum_s d_t(s) sum_a pi_t(a|s) R(s, a)
    expected = float(np.einsum("ts,tsa,sa->", ref, pi, mdp.R))
    assert evaluate_finite_horizon(mdp, pi).reward[0] == pytest.approx(expected, abs=1e-12)


def test_stationary_tables_are_broadcast_and_bad_input_refused():
    mdp = tiny_mdp(0)
    stationary = np.full((S, A), 1 / A)
    assert time_indexed_policy(stationary, T, S, A).shape == (T, S, A)
    np.testing.assert_allclose(evaluate_finite_horizon(mdp, stationary).reward,
                               evaluate_finite_horizon(mdp, np.broadcast_to(stationary, (T, S, A))).reward)
    with pytest.raises(ValueError, match="pi: must have shape"):
        evaluate_finite_horizon(mdp, np.full((2, S, A), 1 / A))
    with pytest.raises(ValueError, match="q: every row"):
        evaluate_finite_horizon(mdp, stationary, np.full((S, A), 0.5))
    with pytest.raises(ValueError, match="d0: must be distributions"):
        evaluate_finite_horizon(mdp, stationary, d0=np.ones(S))
    with pytest.raises(ValueError, match="R: need a finite reward table"):
        evaluate_finite_horizon(mdp.without_reward(), stationary)
    with pytest.raises(ValueError, match="horizon: must be an integer >= 1"):
        evaluate_finite_horizon(mdp, stationary, horizon=0)
