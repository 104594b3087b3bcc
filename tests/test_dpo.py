"""DPO against hand-computed values and against the exact KL-regularised optimum (docs/equations.md §6)."""

import itertools
import math

import numpy as np
import pytest
import torch

from minirl.algos.dpo import DPOConfig, dpo_loss, sequence_log_prob, train_dpo
from minirl.data import Preferences, TrajectoryBatch
from minirl.mdp import TabularMDP, soft_value_iteration
from minirl.policies import TabularPolicy


def test_dpo_loss_and_gradient_by_hand():
    logp_c = torch.tensor([-1.0], requires_grad=True)
    loss, stats = dpo_loss(logp_c, torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]), beta=0.5)
    # implicit rewards 0.5 * 0.5 = 0.25 and 0.5 * (-0.5) = -0.25, margin 0.5
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-0.5)), abs=1e-6)  # 0.474077
    assert stats["rewards/margin"] == pytest.approx(0.5) and stats["rewards/accuracy"] == 1.0
    (grad,) = torch.autograd.grad(loss, logp_c)
    assert grad.item() == pytest.approx(-0.5 / (1 + math.exp(0.5)), abs=1e-6)  # -beta sigma(-margin)
    soft, _ = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]),
                       beta=0.5, label=torch.tensor([0.7]))
    expected = 0.7 * math.log(1 + math.exp(-0.5)) + 0.3 * math.log(1 + math.exp(0.5))
    assert soft.item() == pytest.approx(expected, abs=1e-6)


def _pairs(trajectories, returns):
    """Every unordered pair once, labelled with its Bradley-Terry probability sigma(R_i - R_j)."""
    obs, actions = trajectories
    pairs = list(itertools.combinations(range(len(obs)), 2))
    chosen = TrajectoryBatch(obs=obs[[i for i, _ in pairs]], actions=actions[[i for i, _ in pairs]],
                             mask=torch.ones(len(pairs), obs.shape[1], dtype=torch.bool))
    rejected = TrajectoryBatch(obs=obs[[j for _, j in pairs]], actions=actions[[j for _, j in pairs]],
                               mask=torch.ones(len(pairs), obs.shape[1], dtype=torch.bool))
    strength = torch.tensor([1 / (1 + math.exp(-(returns[i] - returns[j]))) for i, j in pairs])
    return Preferences(chosen, rejected, strength)


def test_dpo_on_a_bandit_converges_to_pi_ref_exp_r_over_beta():
    """One state, four arms: the fixed point is pi* = pi_ref exp(r / beta) / Z, exactly."""
    r = np.array([1.0, 0.2, -0.5, 0.6])
    pi_ref = np.array([[0.1, 0.4, 0.3, 0.2]])
    beta = 0.5
    trajectories = (torch.zeros(4, 1, dtype=torch.long), torch.arange(4)[:, None])
    prefs = _pairs((trajectories[0], trajectories[1]), r)
    policy = TabularPolicy(1, 4)
    train_dpo(policy, TabularPolicy.from_table(pi_ref), prefs,
              DPOConfig(beta=beta, n_updates=1500, lr=0.05, use_strength=True))
    target = pi_ref[0] * np.exp(r / beta)
    np.testing.assert_allclose(policy.table()[0], target / target.sum(), atol=2e-3)


def test_dpo_on_trajectory_preferences_reaches_the_soft_value_iteration_optimum():
    """A depth-2 binary tree (deterministic): DPO on all trajectory pairs = soft VI with the prior pi_ref."""
    S, A = 7, 2
    P = np.zeros((S, A, S))
    for s, a in itertools.product(range(3), range(A)):
        P[s, a, 2 * s + 1 + a] = 1.0  # 0 -> 1, 2; 1 -> 3, 4; 2 -> 5, 6
    P[3:, :, :] = 0.0
    for leaf in range(3, 7):
        P[leaf, :, leaf] = 1.0
    rng = np.random.default_rng(0)
    R = np.zeros((S, A))
    R[:3] = rng.normal(size=(3, A))
    terminal = np.array([False] * 3 + [True] * 4)
    mdp = TabularMDP(P=P, R=R, rho0=np.eye(S)[0], gamma=1.0, horizon=2, terminal=terminal)
    pi_ref = np.full((S, A), 0.5)
    pi_ref[:3] = rng.dirichlet(np.ones(A), size=3)
    beta = 0.5
    # the four trajectories (s0, a0), (s1, a1) and their returns
    paths = [(a0, a1) for a0 in range(A) for a1 in range(A)]
    obs = torch.tensor([[0, 1 + a0] for a0, _ in paths])
    actions = torch.tensor([[a0, a1] for a0, a1 in paths])
    returns = [R[0, a0] + R[1 + a0, a1] for a0, a1 in paths]
    prefs = _pairs((obs, actions), returns)
    policy = TabularPolicy(S, A)
    history = train_dpo(policy, TabularPolicy.from_table(pi_ref), prefs,
                        DPOConfig(beta=beta, n_updates=2000, lr=0.05, use_strength=True))
    optimum = soft_value_iteration(mdp, beta, prior=pi_ref, horizon=2).pi  # (T, S, A)
    np.testing.assert_allclose(policy.table()[0], optimum[0, 0], atol=3e-3)
    np.testing.assert_allclose(policy.table()[1:3], optimum[1, 1:3], atol=3e-3)
    assert history[-1]["loss/dpo"] < history[0]["loss/dpo"]
    # at the optimum, the implicit reward difference is the true return difference: beta Delta = R+ - R-
    with torch.no_grad():
        ref = TabularPolicy.from_table(pi_ref)
        delta = (sequence_log_prob(policy, prefs.chosen) - sequence_log_prob(ref, prefs.chosen)
                 - sequence_log_prob(policy, prefs.rejected) + sequence_log_prob(ref, prefs.rejected))
    true = torch.logit(prefs.strength.double())  # R_i - R_j
    torch.testing.assert_close(beta * delta.double(), true, atol=2e-2, rtol=0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="beta: must be > 0"):
        DPOConfig(beta=0.0)
    trajectories = (torch.zeros(3, 1, dtype=torch.long), torch.arange(3)[:, None])
    prefs = _pairs(trajectories, [0.0, 1.0, 2.0])
    policy = TabularPolicy(1, 3)
    with pytest.raises(ValueError, match="reference: must be a frozen copy"):
        train_dpo(policy, policy, prefs)
    hard = Preferences(prefs.chosen, prefs.rejected)
    with pytest.raises(ValueError, match="use_strength=True needs Preferences.strength"):
        train_dpo(policy, TabularPolicy(1, 3), hard, DPOConfig(use_strength=True))


def test_a_reference_sharing_parameters_with_the_policy_is_refused():
    """A reference that shares a tensor with the policy would move with it: refused before any step."""
    policy = TabularPolicy(3, 2)
    reference = TabularPolicy(3, 2)
    reference.theta = policy.theta  # the same Parameter object: shared storage
    chosen = TrajectoryBatch(obs=torch.tensor([[0]]), actions=torch.tensor([[0]]), mask=torch.ones(1, 1, dtype=torch.bool))
    rejected = chosen.replace(actions=torch.tensor([[1]]))
    with pytest.raises(ValueError, match="reference"):
        train_dpo(policy, reference, Preferences(chosen, rejected), DPOConfig(n_updates=1))


def test_dpo_loss_is_the_bradley_terry_loss_of_the_implicit_rewards():
    """DPO = Bradley-Terry on r = beta log pi / pi_ref (docs/equations.md §6): the same number, soft labels too."""
    from minirl.algos.reward_model import bradley_terry_loss

    g = torch.Generator().manual_seed(0)
    lp_c, lp_r, ref_c, ref_r = (torch.randn(6, generator=g) for _ in range(4))
    p = torch.rand(6, generator=g)
    loss, stats = dpo_loss(lp_c, lp_r, ref_c, ref_r, 0.3, p)
    assert torch.equal(loss, bradley_terry_loss(0.3 * (lp_c - ref_c), 0.3 * (lp_r - ref_r), p))
    assert stats["rewards/margin"] == pytest.approx(float((0.3 * (lp_c - ref_c - lp_r + ref_r)).mean()))


def test_the_shared_minibatch_loop_draws_from_the_seeded_generator():
    """BC, DPO and the reward models share one loop: with replacement from a generator seeded by config.seed,
    the whole dataset (index None) when batch_size is None or >= n."""
    from types import SimpleNamespace

    from minirl.algos.minibatch import minibatch_training

    w = torch.nn.Parameter(torch.zeros(()))
    config = SimpleNamespace(n_updates=3, batch_size=4, lr=0.1, seed=5)
    seen = minibatch_training([w], 10, config, lambda index: ((w - 1) ** 2, index))
    g = torch.Generator().manual_seed(5)
    assert all(torch.equal(i, torch.randint(10, (4,), generator=g)) for i in seen)
    full = minibatch_training([w], 4, SimpleNamespace(n_updates=2, batch_size=None, lr=0.1, seed=0),
                              lambda index: ((w - 1) ** 2, index))
    assert full == [None, None] and 0 < float(w.detach()) < 1
