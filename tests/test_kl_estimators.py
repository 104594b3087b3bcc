"""KL estimators k1, k2, k3 and their placement (docs/equations.md §11), in exact expectation."""

import itertools

import numpy as np
import pytest
import torch

from minirl.algos.kl_penalty import (OFF_POLICY_PLACEMENTS, KLLoss, KLPenalisedReward, exact_kl_gradients,
                                     exact_off_policy_kl_gradients, kl_penalised_reward)
from minirl.algos.ppo import PPO, PPOConfig, ppo_loss
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
    with pytest.raises(ValueError, match="^estimator: k1 in the loss without ratio=True"):
        KLLoss(reference, estimator="k1")  # no gradient on policy, away from pi_old off it
    KLLoss(reference, estimator="k1", ratio=True)  # the ratio makes it the per-token reverse KL's gradient


def _behaviour(policy, scale, seed=1):
    """pi_old: the policy's logits plus scale x seeded standard normal noise (a fixed table, no gradient)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(policy.theta.shape, generator=g, dtype=torch.float64)
    return TabularPolicy.from_table(torch.softmax(policy.theta.detach() + scale * noise, -1).numpy()).double()


def _sampled_by(behaviour, batch):
    with torch.no_grad():
        return batch.replace(log_probs=behaviour.log_prob(batch))


ON_POLICY_COUNTERPART = {"reward": "reward", "reward_unclipped": "reward", "loss": "loss", "loss_ratio": "loss_ratio",
                         "token_reward_fresh": "reward", "sequence_reward_stale": "reward",
                         "sequence_reward": "reward", "sequence_loss": "loss", "sequence_loss_ratio": "loss_ratio"}


def test_off_policy_rows_reduce_to_the_on_policy_rows_when_pi_old_is_pi():
    policy, reference, batch = _chain()
    weights = torch.ones(batch.batch_size)
    on = exact_kl_gradients(policy, reference, batch, weights, [policy.theta])
    off = exact_off_policy_kl_gradients(policy, reference, _sampled_by(policy, batch), weights, [policy.theta])
    assert off["kl_old_to_policy"] == pytest.approx(0.0, abs=1e-12) and off["clip_fraction"] == 0.0
    torch.testing.assert_close(off["grad"], on["grad"])
    for est in ("k1", "k2", "k3"):
        for placement in OFF_POLICY_PLACEMENTS:
            row, expected = off[f"{est}/{placement}"], on[f"{est}/{ON_POLICY_COUNTERPART[placement]}"]
            torch.testing.assert_close(row["grad"], expected["grad"], rtol=1e-9, atol=1e-12)
            assert row["value"] == pytest.approx(expected["value"], rel=1e-12)
            assert row["variance"] == pytest.approx(expected["variance"], rel=1e-9)


def test_sequence_weights_make_off_policy_samples_exact():
    """W = d^pi / d^old per sequence: k1 in the reward recomputed at pi is grad KL exactly, and every
    sequence-weighted row is its on-policy row; PPO's per-token ratios with the stale penalty are not exact."""
    policy, reference, batch = _chain()
    weights = torch.ones(batch.batch_size)
    on = exact_kl_gradients(policy, reference, batch, weights, [policy.theta])
    off = exact_off_policy_kl_gradients(policy, reference, _sampled_by(_behaviour(policy, 0.4), batch), weights,
                                        [policy.theta])
    assert off["kl_old_to_policy"] > 1e-3
    torch.testing.assert_close(off["grad"], on["grad"])  # the target is grad KL at the current pi
    assert off["k1/sequence_reward"]["rel_error"] < 1e-10 and abs(off["k1/sequence_reward"]["bias"]) < 1e-12
    for est in ("k1", "k2", "k3"):
        for placement in ("reward", "loss", "loss_ratio"):
            row, expected = off[f"{est}/sequence_{placement}"], on[f"{est}/{placement}"]
            torch.testing.assert_close(row["grad"], expected["grad"], rtol=1e-9, atol=1e-12)
            assert row["value"] == pytest.approx(expected["value"], rel=1e-10)  # E_old[W K] = E_pi[K]
    for key in ("k1/reward", "k1/reward_unclipped", "k1/token_reward_fresh", "k1/sequence_reward_stale"):
        assert off[key]["rel_error"] > 0.01, key  # each of staleness and per-token ratios loses exactness
    assert off["k1/loss"]["grad"].norm() > 0.05 * off["grad"].norm()  # k1 in the loss: no longer zero


def test_off_policy_loss_gradients_in_closed_form():
    """On pi_old's states (visits n_old(s)): k1 in the loss is sum_s n_old(s) (pi_old(.|s) - pi(.|s)) on the
    logits (it pushes pi away from pi_old), and k1 or k3 times the ratio is the per-state reverse KL's gradient."""
    policy, reference, batch = _chain()
    old = _behaviour(policy, 0.4)
    off = exact_off_policy_kl_gradients(policy, reference, _sampled_by(old, batch), torch.ones(batch.batch_size),
                                        [policy.theta])
    visits = _visits(old, batch)
    pi_old, pi = torch.softmax(old.theta.double(), -1), torch.softmax(policy.theta.detach().double(), -1)
    torch.testing.assert_close(off["k1/loss"]["grad"], (visits[:, None] * (pi_old - pi)).reshape(-1))
    theta = policy.theta.detach().clone().requires_grad_(True)
    q, p = torch.softmax(theta, -1), torch.softmax(reference.theta.double(), -1)
    g_reverse, = torch.autograd.grad((visits * (q * (q / p).log()).sum(-1)).sum(), theta)
    for key in ("k1/loss_ratio", "k3/loss_ratio"):
        torch.testing.assert_close(off[key]["grad"], g_reverse.reshape(-1))


def test_off_policy_reward_row_is_ppo_loss_on_the_reward_fn():
    """The "reward" row is the gradient of PPO's own loss on KLPenalisedReward's rewards (computed from the
    sampling log-probs), each row's advantage scaled by its probability under pi_old (the clipped surrogate is
    positively homogeneous in A), with PPO's default clip -- which is active here."""
    policy, reference, batch = _chain()
    sampled = _sampled_by(_behaviour(policy, 0.8), batch)
    clip_eps = PPOConfig().clip_eps
    off = exact_off_policy_kl_gradients(policy, reference, sampled, torch.ones(batch.batch_size), [policy.theta],
                                        clip_eps)
    assert off["clip_fraction"] > 0.05
    w = batch.masked_sum(sampled.log_probs).exp()  # d^old, (B,)
    for est in ("k1", "k3"):
        rewards = KLPenalisedReward(lambda b: torch.zeros(b.batch_size), reference, 1.0, est)(sampled).double()
        ret = batch.masked_sum(rewards)
        adv = ((ret - (w * ret).sum()) * w)[:, None] * batch.mask
        logp = policy.log_prob(batch)
        zeros = torch.zeros_like(logp)
        loss, _ = ppo_loss(logp, sampled.log_probs, adv, zeros, zeros, zeros, zeros, batch.mask, clip_eps,
                           vf_coef=0.0)
        g, = torch.autograd.grad(loss * batch.mask.sum(), policy.theta)
        torch.testing.assert_close(off[f"{est}/reward"]["grad"], g.reshape(-1), rtol=1e-5, atol=1e-7)
        assert (off[f"{est}/reward"]["grad"] - off[f"{est}/reward_unclipped"]["grad"]).norm() > 1e-3


def test_off_policy_input_is_checked():
    policy, reference, batch = _chain()
    weights = torch.ones(batch.batch_size)
    with pytest.raises(ValueError, match="^batch: needs log_probs"):
        exact_off_policy_kl_gradients(policy, reference, batch, weights, [policy.theta])
    sampled = _sampled_by(_behaviour(policy, 0.4), batch)
    with pytest.raises(ValueError, match="^batch: must enumerate"):
        exact_off_policy_kl_gradients(policy, reference, sampled[torch.arange(5)], torch.ones(5), [policy.theta])
    with pytest.raises(ValueError, match="^clip_eps:"):
        exact_off_policy_kl_gradients(policy, reference, sampled, weights, [policy.theta], clip_eps=0.0)


def test_lab_off_policy_rows_on_the_markov_task():
    """The lab's markov instance (the results page): the same findings, through the float32 bigram tables."""
    from llmtrack.experiments.kl_estimators import KLEstimatorConfig, kl_estimators_table, run_kl_estimators

    result = run_kl_estimators(KLEstimatorConfig())
    assert len(result["off_policy"]) == 2
    on = {(r["estimator"], r["placement"]): r for r in result["rows"]}
    for off in result["off_policy"]:
        assert 0.01 < off["kl_old_to_policy"] < 0.1 and off["clip_fraction"] > 0.0
        rows = {(r["estimator"], r["placement"]): r for r in off["rows"]}
        assert {k for k, r in rows.items() if r["unbiased_gradient"]} == {("k1", "sequence_reward")}
        assert rows["k1", "reward"]["cosine"] > 0.9 and rows["k1", "reward"]["rel_error"] > 0.1
        assert rows["k3", "loss"]["rel_error"] > on["k3", "loss"]["rel_error"]  # GRPO's choice gets worse
        assert abs(rows["k1", "loss_ratio"]["cosine"] - on["k1", "loss_ratio"]["cosine"]) < 0.01  # ... this does not
    assert "Off policy: samples from pi_old = pi*_0.6" in kl_estimators_table(result)
    with pytest.raises(ValueError, match="^behaviour_beta:"):
        KLEstimatorConfig(behaviour_beta=0.0)
