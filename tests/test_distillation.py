"""Distillation with distribution labels (docs/equations.md §10), against closed forms, autograd of the
exact divergence, exact occupancies and enumeration of every sequence of a small token MDP."""

import itertools
import math

import numpy as np
import pytest
import torch

from minirl.algos.distillation import (GKDConfig, ReverseKLReward, forward_kl, generalised_jsd, gkd_divergence,
                                       gkd_loss, reverse_kl, soft_bc_loss, train_gkd)
from minirl.algos.group_advantages import reward_to_go, sequence_advantages
from minirl.algos.ppo import clipped_surrogate
from minirl.data import TrajectoryBatch
from minirl.mdp import TabularMDP, state_distributions
from minirl.policies import GaussianPolicy, TabularPolicy, distribution_labels

P = np.array([0.5, 0.3, 0.2])
Q = np.array([0.1, 0.6, 0.3])


def kl(p, q):
    return float(np.sum(p * np.log(p / q)))


def logs(*xs):
    return [torch.tensor(np.log(x), dtype=torch.float64) for x in xs]


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_gkd_divergence_equals_the_closed_form(beta):
    lp, lq = logs(P, Q)
    m = (P + Q) / 2
    expected = {0.0: kl(P, Q), 0.5: 4 * (0.5 * kl(P, m) + 0.5 * kl(Q, m)), 1.0: kl(Q, P)}[beta]
    assert gkd_divergence(lp, lq, beta).item() == pytest.approx(expected, rel=1e-12)


def test_endpoints_are_the_limits_and_raw_jsd_vanishes_there():
    lp, lq = logs(P, Q)
    assert gkd_divergence(lp, lq, 1e-6).item() == pytest.approx(kl(P, Q), rel=1e-4)
    assert gkd_divergence(lp, lq, 1 - 1e-6).item() == pytest.approx(kl(Q, P), rel=1e-4)
    # GKD's raw JSD(beta) is 0 at both ends (the silent-zero bug the normalisation removes) ...
    assert generalised_jsd(lp, lq, 0.0).item() == 0.0 == generalised_jsd(lp, lq, 1.0).item()
    # ... and a mixture of log-probabilities instead of probabilities would give another number
    beta = 0.3
    m = beta * P + (1 - beta) * Q
    assert generalised_jsd(lp, lq, beta).item() == pytest.approx(beta * kl(P, m) + (1 - beta) * kl(Q, m), rel=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_no_beta_zeroes_the_loss(beta):
    lp, lq = logs(P, Q)
    assert gkd_divergence(lp, lq, beta).item() > 0.01
    assert gkd_divergence(lp, lp, beta).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_gkd_loss_gradient_is_autograd_of_the_exact_divergence(beta):
    """A softmax table against a stochastic teacher: the library's masked-mean loss on a batch that
    visits states with counts c(s) is sum_s c(s) D_beta(p(s), q(s)) / sum c; its gradient must be that of
    the divergence written from its definition (and, at beta = 0, q - p; at beta = 1, q (log q/p - KL))."""
    g = torch.Generator().manual_seed(0)
    S, A = 4, 3
    teacher = TabularPolicy.from_table(torch.softmax(torch.randn(S, A, generator=g), -1).numpy())
    student = TabularPolicy(S, A, init_scale=1.0, generator=g).double()
    obs = torch.tensor([[0, 1, 2, 3], [1, 1, 3, 0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    batch = TrajectoryBatch(obs=obs, actions=torch.zeros_like(obs), mask=mask)
    loss = gkd_loss(student, teacher, batch, beta)
    (grad,) = torch.autograd.grad(loss, student.theta)

    theta = student.theta.detach().clone().requires_grad_(True)
    p = torch.softmax(teacher.theta.double(), -1)
    q = torch.softmax(theta, -1)
    m = beta * p + (1 - beta) * q
    if beta == 0.0:
        d = (p * (p / q).log()).sum(-1)
    elif beta == 1.0:
        d = (q * (q / p).log()).sum(-1)
    else:
        d = (beta * (p * (p / m).log()).sum(-1) + (1 - beta) * (q * (q / m).log()).sum(-1)) / (beta * (1 - beta))
    counts = torch.bincount(obs[mask], minlength=S).double()
    exact = (counts * d).sum() / counts.sum()
    (expected,) = torch.autograd.grad(exact, theta)
    assert loss.item() == pytest.approx(exact.item(), rel=1e-5)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    w = (counts / counts.sum()).unsqueeze(-1)
    with torch.no_grad():
        if beta == 0.0:
            torch.testing.assert_close(grad, w * (q - p), rtol=1e-4, atol=1e-6)
        if beta == 1.0:
            log_ratio = (q / p).log()
            torch.testing.assert_close(grad, w * q * (log_ratio - (q * log_ratio).sum(-1, keepdim=True)),
                                       rtol=1e-4, atol=1e-6)


def test_soft_bc_loss_is_forward_kl_and_zero_at_the_teacher():
    teacher = TabularPolicy.from_table(np.array([[0.2, 0.8], [0.5, 0.5]]))
    student = TabularPolicy(2, 2)
    batch = TrajectoryBatch(obs=torch.tensor([[0, 1]]), actions=torch.tensor([[0, 0]]), mask=torch.ones(1, 2, dtype=bool))
    expected = (kl(np.array([0.2, 0.8]), np.array([0.5, 0.5])) + 0.0) / 2
    assert soft_bc_loss(student, teacher, batch).item() == pytest.approx(expected, rel=1e-5)
    student.theta.data = teacher.theta.data.clone()
    assert soft_bc_loss(student, teacher, batch).item() == pytest.approx(0.0, abs=1e-6)


def test_zero_probability_teacher_actions_give_finite_forward_and_infinite_reverse_kl():
    lp = torch.log(torch.tensor([1.0, 0.0]))
    lq = torch.log(torch.tensor([0.9, 0.1]))
    assert forward_kl(lp, lq).item() == pytest.approx(-math.log(0.9))
    assert reverse_kl(lp, lq).item() == math.inf


def _random_mdp(seed=0, S=5, A=3, horizon=6):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    return TabularMDP(P=P, R=None, rho0=np.eye(S)[0], gamma=1.0, horizon=horizon)


def test_on_policy_reverse_kl_with_exact_occupancies_converges_to_the_expert():
    """Minimise sum_t sum_s d_t^{pi_theta}(s) KL(pi_theta(s) || pi_T(s)) with the exact state distribution of
    the current student as weights (on-policy, beta = 1): the student becomes the stochastic expert."""
    mdp = _random_mdp()
    rng = np.random.default_rng(1)
    expert = rng.dirichlet(np.ones(3), size=5)  # full support
    teacher = TabularPolicy.from_table(expert)
    student = TabularPolicy(5, 3)
    obs = torch.arange(5).unsqueeze(0)
    batch = TrajectoryBatch(obs=obs, actions=torch.zeros_like(obs), mask=torch.ones(1, 5, dtype=bool))
    opt = torch.optim.Adam(student.parameters(), lr=0.1)
    for _ in range(400):
        d = torch.tensor(state_distributions(mdp, student.table(), mdp.horizon).sum(0), dtype=torch.float32)
        per_state = gkd_divergence(distribution_labels(teacher, batch), distribution_labels(student, batch), 1.0)
        loss = (d * per_state[0]).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert np.abs(student.table() - expert).max() < 1e-3


def _enumerated_chain(A=3, T=3):
    """Every length-T sequence of a token chain whose state is the previous token (start state 0)."""
    seqs = torch.tensor(list(itertools.product(range(A), repeat=T)))  # (A^T, T)
    obs = torch.cat([torch.zeros(len(seqs), 1, dtype=torch.long), seqs[:, :-1]], 1)
    return TrajectoryBatch(obs=obs, actions=seqs, mask=torch.ones_like(seqs, dtype=torch.bool))


@pytest.mark.parametrize("advantage,gamma,exact", [("reinforce", 1.0, True), ("reward_to_go", 1.0, True),
                                                    ("reward_to_go", 0.0, False)])
def test_sampled_token_reverse_kl_reward_gives_the_exact_sequence_kl_gradient(advantage, gamma, exact):
    """E_{tau ~ d^pi}[ PPO's surrogate gradient with the reward log pi_T - log pi_old and REINFORCE advantages
    (whole-sequence, or the reward-to-go at gamma = 1) ] = grad KL(d^pi || d^T), both by enumeration of all
    A^T sequences. Each step's own reward alone (gamma = 0) is a different direction."""
    g = torch.Generator().manual_seed(3)
    A, T = 3, 3
    student = TabularPolicy(A, A, init_scale=1.0, generator=g).double()
    teacher = TabularPolicy.from_table(torch.softmax(2 * torch.randn(A, A, generator=g), -1).numpy()).double()
    batch = _enumerated_chain(A, T)

    log_d = batch.masked_sum(student.log_prob(batch))  # (B,)
    exact_kl = (log_d.exp() * (log_d - batch.masked_sum(teacher.log_prob(batch)))).sum()
    (expected,) = torch.autograd.grad(exact_kl, student.theta)

    logp = student.log_prob(batch)
    sampled = batch.replace(log_probs=logp.detach())
    rewards = ReverseKLReward(teacher, student)(sampled)  # (B, T)
    if advantage == "reinforce":
        adv = sequence_advantages(rewards.double(), batch.mask, batch.batch_size, "reinforce")
    else:
        adv = reward_to_go(rewards.double(), batch.episode_end, batch.mask, gamma)
    weight = log_d.detach().exp().unsqueeze(1)  # d^pi(tau): the exact expectation over sampled sequences
    ratio = (logp - sampled.log_probs).exp()
    surrogate = (weight * clipped_surrogate(ratio, adv, 0.2)).sum()
    (grad,) = torch.autograd.grad(surrogate, student.theta)
    assert expected.abs().max() > 1e-2  # not a vacuous match
    if exact:
        torch.testing.assert_close(grad, expected, rtol=1e-5, atol=1e-7)  # the reward is float32
    else:
        assert (grad - expected).norm() > 0.1 * expected.norm()


def _chain_rollout(policy, n: int, seed: int, T: int) -> TrajectoryBatch:
    """n roll-outs of T steps on the chain whose state is the previous action, from state 0."""
    gen = torch.Generator().manual_seed(seed)
    s, obs, acts = torch.zeros(n, dtype=torch.long), [], []
    for _ in range(T):
        a, _ = policy.sample(s, generator=gen)
        obs.append(s)
        acts.append(a)
        s = a
    o, a = torch.stack(obs, 1), torch.stack(acts, 1)
    return TrajectoryBatch(obs=o, actions=a, mask=torch.ones_like(o, dtype=torch.bool))


def test_train_gkd_on_a_tabular_chain_reaches_the_teacher_on_visited_states():
    g = torch.Generator().manual_seed(0)
    A, T = 3, 4
    teacher = TabularPolicy.from_table(torch.softmax(torch.randn(A, A, generator=g), -1).numpy())

    def collect(policy, n, seed):
        return _chain_rollout(policy, n, seed, T)

    results = {}
    for beta in (0.0, 0.5, 1.0):
        student = TabularPolicy(A, A)
        cfg = GKDConfig(beta=beta, lmbda=0.5, n_iterations=3, sequences_per_iteration=20, n_updates=150,
                        batch_size=None, lr=0.1)
        data, history = train_gkd(student, teacher, collect, cfg)
        assert data.batch_size == cfg.labelled_sequences == 60
        assert history["data/on_policy"] == [10.0] * 3
        assert history["loss/gkd"][-1] < 1e-4
        results[beta] = student.table()
        assert np.abs(student.table() - teacher.table()).max() < 0.02
    # same seed, same numbers
    again = TabularPolicy(A, A)
    train_gkd(again, teacher, collect, GKDConfig(beta=1.0, lmbda=0.5, n_iterations=3, sequences_per_iteration=20,
                                                 n_updates=150, batch_size=None, lr=0.1))
    assert np.array_equal(again.table(), results[1.0])


@pytest.mark.parametrize("field,kwargs", [("beta", dict(beta=1.5)), ("beta", dict(beta=-0.1)),
                                          ("lmbda", dict(lmbda=2.0)), ("lmbda", dict(lmbda=-1e-3)),
                                          ("sequences_per_iteration", dict(sequences_per_iteration=0)),
                                          ("n_iterations", dict(n_iterations=0))])
def test_bad_config_names_the_field(field, kwargs):
    with pytest.raises(ValueError, match=f"^{field}:"):
        GKDConfig(**kwargs)


def test_bad_teachers_are_refused_before_any_work():
    calls = []

    def collect(policy, n, seed):
        calls.append(n)
        raise AssertionError("no work before the checks")

    with pytest.raises(ValueError, match="^teacher: has 4 actions"):
        train_gkd(TabularPolicy(3, 3), TabularPolicy(3, 4), collect)

    class HardOnly:
        n_actions = 3

        def label(self, batch):
            return batch.actions

    with pytest.raises(ValueError, match="^teacher: gives no action distribution"):
        train_gkd(TabularPolicy(3, 3), HardOnly(), collect)
    with pytest.raises(ValueError, match="^teacher: gives no action distribution"):
        distribution_labels(GaussianPolicy(2, 1), TrajectoryBatch(obs=torch.zeros(1, 1, 2),
                                                                  actions=torch.zeros(1, 1, 1),
                                                                  mask=torch.ones(1, 1, dtype=bool)))
    assert calls == []


def test_train_gkd_labels_each_sequence_once_across_rounds_of_different_lengths():
    """The teacher's distributions are read once per sequence and kept aligned with the aggregate, also
    when rounds have different horizons (padded like TrajectoryBatch.cat pads the steps)."""
    g = torch.Generator().manual_seed(1)
    A = 3
    table = TabularPolicy.from_table(torch.softmax(torch.randn(A, A, generator=g), -1).numpy())
    rows_read = []

    class CountingTable(torch.nn.Module):
        n_actions = A

        def label_distribution(self, batch):
            rows_read.append(batch.batch_size)
            return distribution_labels(table, batch)

        def sample(self, obs, generator=None, deterministic=False):
            return table.sample(obs, generator=generator, deterministic=deterministic)

    def collect(policy, n, seed):  # horizon 2, 3, 4, ... by round
        return _chain_rollout(policy, n, seed, 2 + seed % 3)

    student = TabularPolicy(A, A)
    cfg = GKDConfig(beta=0.5, lmbda=0.5, n_iterations=3, sequences_per_iteration=10, n_updates=200,
                    batch_size=8, lr=0.1)
    data, history = train_gkd(student, CountingTable(), collect, cfg)
    assert sum(rows_read) == cfg.labelled_sequences == data.batch_size == 30
    assert data.horizon == 4
    # the stored labels were the teacher's: the student reached it on the visited states
    assert np.abs(student.table() - table.table()).max() < 0.05
    assert history["loss/gkd"][-1] == pytest.approx(0.0, abs=1e-3)
