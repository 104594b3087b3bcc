"""KL estimators k1, k2, k3 and their placement (docs/equations.md §11), in exact expectation."""

import itertools

import numpy as np
import pytest
import torch

from minirl.algos.kl_penalty import KLLoss, KLPenalisedReward, exact_kl_gradients, kl_penalised_reward
from minirl.algos.ppo import PPO, PPOConfig
from minirl.data import TrajectoryBatch
from minirl.estimators import kl_estimate
from minirl.policies import TabularPolicy


def test_per_token_expectations_in_closed_form():
    pi, ref = np.array([0.6, 0.3, 0.1]), np.array([0.2, 0.5, 0.3])
    log_r = torch.tensor(np.log(ref / pi))
    kl = float(np.sum(pi * np.log(pi / ref)))
    expect = {k: float((torch.tensor(pi) * kl_estimate(log_r, k)).sum()) for k in ("k1", "k2", "k3")}
    assert expect["k1"] == pytest.approx(kl, rel=1e-12)
    assert expect["k3"] == pytest.approx(kl, rel=1e-12)
    assert expect["k2"] == pytest.approx(0.5 * float(np.sum(pi * np.log(ref / pi) ** 2)), rel=1e-12)
    assert abs(expect["k2"] - kl) > 0.05  # k2 is biased
    assert (kl_estimate(log_r, "k3") >= 0).all() and (kl_estimate(log_r, "k1") < 0).any()
    with pytest.raises(ValueError, match="^estimator:"):
        kl_estimate(log_r, "k4")


def _chain(A=3, T=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    policy = TabularPolicy(A, A, init_scale=1.0, generator=g).double()
    reference = TabularPolicy.from_table(torch.softmax(torch.randn(A, A, generator=g), -1).numpy()).double()
    seqs = torch.tensor(list(itertools.product(range(A), repeat=T)))
    obs = torch.cat([torch.zeros(len(seqs), 1, dtype=torch.long), seqs[:, :-1]], 1)
    batch = TrajectoryBatch(obs=obs, actions=seqs, mask=torch.ones_like(seqs, dtype=torch.bool))
    return policy, reference, batch


def _visits(policy, batch):
    """Expected visits of each state, sum_t d_t(s), by enumeration (held fixed: no gradient)."""
    with torch.no_grad():
        d = batch.masked_sum(policy.log_prob(batch)).exp()
    return torch.zeros(policy.n_states, dtype=torch.float64).index_add_(
        0, batch.obs.reshape(-1), d.repeat_interleave(batch.horizon))


def test_exact_gradients_match_the_derivations():
    policy, reference, batch = _chain()
    out = exact_kl_gradients(policy, reference, batch, torch.ones(batch.batch_size), [policy.theta])
    exact = out["grad"]
    assert out["k1/reward"]["rel_error"] < 1e-10  # k1 in the reward: the exact gradient
    assert out["k1/loss"]["grad"].abs().max() < 1e-12  # k1 in the loss: zero in expectation
    assert out["k3/reward"]["rel_error"] > 0.05  # k3 in the reward: not the KL's gradient
    assert abs(out["k1/reward"]["bias"]) < 1e-12 and abs(out["k3/reward"]["bias"]) < 1e-12
    assert out["k2/reward"]["bias"] != pytest.approx(0.0, abs=1e-3)

    visits = _visits(policy, batch)
    theta = policy.theta.detach().clone().requires_grad_(True)
    q, p = torch.softmax(theta, -1), torch.softmax(reference.theta.double(), -1)
    forward = (visits * (p * (p / q).log()).sum(-1)).sum()  # sum_t E_{s_t} KL(pi_ref(s) || pi(s)), states fixed
    reverse = (visits * (q * (q / p).log()).sum(-1)).sum()  # the same for the reverse KL, states fixed
    g_forward, = torch.autograd.grad(forward, theta, retain_graph=True)
    g_reverse, = torch.autograd.grad(reverse, theta)
    torch.testing.assert_close(out["k3/loss"]["grad"], g_forward.reshape(-1))  # k3 in the loss: forward KL
    for key in ("k2/loss", "k1/loss_ratio", "k3/loss_ratio"):  # per-token reverse KL without future credit
        torch.testing.assert_close(out[key]["grad"], g_reverse.reshape(-1))
    assert (g_reverse.reshape(-1) - exact).norm() > 0.05 * exact.norm()  # ... which is not grad KL


def test_enumeration_is_required():
    policy, reference, batch = _chain()
    with pytest.raises(ValueError, match="^batch: must enumerate"):
        exact_kl_gradients(policy, reference, batch[torch.arange(5)], torch.ones(5), [policy.theta])


def test_reward_estimator_choice():
    lp = torch.tensor([[-1.0, -0.5, -2.0]])
    ref = torch.tensor([[-1.5, -0.5, -0.2]])
    mask = torch.tensor([[True, True, False]])
    score = torch.tensor([2.0])
    default, kl = kl_penalised_reward(score, lp, ref, mask, 0.1)
    k1, _ = kl_penalised_reward(score, lp, ref, mask, 0.1, "k1")
    assert torch.equal(default, k1)
    k3, kl3 = kl_penalised_reward(score, lp, ref, mask, 0.1, "k3")
    log_r = ref - lp
    expected = -0.1 * (torch.expm1(log_r) - log_r) * mask
    expected[0, 1] += 2.0
    torch.testing.assert_close(k3, expected)
    assert torch.equal(kl, kl3)
    with pytest.raises(ValueError, match="^estimator:"):
        KLPenalisedReward(lambda b: torch.zeros(b.batch_size), TabularPolicy(2, 2), 0.1, estimator="k5")


def test_kl_loss_in_ppo_pulls_the_policy_to_the_reference():
    """PPO with zero reward and the k3 loss term: the policy moves to pi_ref (per-state forward KL's minimiser)."""
    reference = TabularPolicy.from_table(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    policy = TabularPolicy(2, 3)
    ppo = PPO(policy, None, PPOConfig(advantage="reinforce", n_epochs=1, n_minibatches=1, lr=0.05,
                                      max_grad_norm=None), regularizer=KLLoss(reference, coef=1.0, estimator="k3"))
    obs = torch.tensor([[0, 1], [1, 0]])
    for _ in range(300):
        with torch.no_grad():
            a = torch.stack([policy.sample(obs[:, t])[0] for t in range(2)], 1)
        batch = TrajectoryBatch(obs=obs, actions=a, mask=torch.ones(2, 2, dtype=bool), rewards=torch.zeros(2, 2),
                                group_size=2)
        batch = batch.replace(log_probs=policy.log_prob(batch).detach())
        ppo.update(batch)
    assert np.abs(policy.table() - reference.table()).max() < 0.02
    with pytest.raises(ValueError, match="^coef:"):
        KLLoss(reference, coef=-1.0)
