"""Hidden tests of a3: GAE's two limits (lambda = 0: the TD error; lambda = 1: the discounted return to go
minus the value), an episode that ends mid-fragment by truncation (bootstrapped, but not continued), the
PPO loss as a masked mean of its parts, and group advantages that really are per group."""

import statistics

import pytest
import torch

from minirl.algos.group_advantages import group_advantages
from minirl.algos.ppo import gae, ppo_loss


@pytest.mark.points(2)
def test_gae_limits_lambda_zero_and_one():
    g = torch.Generator().manual_seed(1)
    T = 6
    rewards = torch.randn(1, T, generator=g, dtype=torch.float64)
    values = torch.randn(1, T, generator=g, dtype=torch.float64)
    bootstrap = 0.7
    next_values = torch.cat([values[:, 1:], torch.tensor([[bootstrap]], dtype=torch.float64)], 1)
    ends = torch.zeros(1, T, dtype=torch.bool)
    mask = torch.ones(1, T, dtype=torch.bool)
    gamma = 0.95
    adv0, _ = gae(rewards, values, next_values, ends, mask, gamma, 0.0)
    torch.testing.assert_close(adv0, rewards + gamma * next_values - values, rtol=0, atol=1e-12)
    adv1, ret1 = gae(rewards, values, next_values, ends, mask, gamma, 1.0)
    r = rewards[0].tolist()
    to_go = [sum(gamma ** (k - t) * r[k] for k in range(t, T)) + gamma ** (T - t) * bootstrap for t in range(T)]
    torch.testing.assert_close(ret1[0], torch.tensor(to_go, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(adv1[0], torch.tensor(to_go, dtype=torch.float64) - values[0], rtol=0, atol=1e-12)


@pytest.mark.points(2)
def test_gae_does_not_carry_advantage_across_a_truncated_episode_end():
    # One row, two episodes: the first truncated at t = 1 (bootstrapped with V(final obs) = 5).
    rewards = torch.tensor([[1.0, 1.0, 0.0, 2.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.5, 1.0, 1.0]], dtype=torch.float64)
    next_values = torch.tensor([[0.5, 5.0, 1.0, 0.0]], dtype=torch.float64)
    ends = torch.tensor([[False, True, False, True]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    gamma, lam = 0.5, 0.5
    d = [1.0 + 0.25 - 0.5, 1.0 + 2.5 - 0.5, 0.0 + 0.5 - 1.0, 2.0 - 1.0]
    expected = [d[0] + 0.25 * d[1], d[1], d[2] + 0.25 * d[3], d[3]]
    adv, _ = gae(rewards, values, next_values, ends, mask, gamma, lam)
    torch.testing.assert_close(adv[0], torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.points(2)
def test_ppo_loss_is_the_masked_mean_of_its_parts():
    g = torch.Generator().manual_seed(5)
    B, T, eps, vf, ent = 2, 4, 0.2, 0.5, 0.01
    logp = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3 - 1.0
    old = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.3 - 1.0
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    old_values = torch.randn(B, T, generator=g, dtype=torch.float64)
    returns = torch.randn(B, T, generator=g, dtype=torch.float64)
    entropy = torch.rand(B, T, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    logp[~mask] = 50.0  # garbage on padding must not matter
    total, n = 0.0, 0
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                rho = float(torch.exp(logp[b, t] - old[b, t]))
                a = float(adv[b, t])
                policy = -min(rho * a, max(1 - eps, min(1 + eps, rho)) * a)
                value = 0.5 * float(values[b, t] - returns[b, t]) ** 2
                total += policy + vf * value - ent * float(entropy[b, t])
                n += 1
    loss, _ = ppo_loss(logp, old, adv, values, old_values, returns, entropy, mask, clip_eps=eps,
                       vf_coef=vf, ent_coef=ent)
    assert float(loss) == pytest.approx(total / n, abs=1e-12)


@pytest.mark.points(2)
def test_group_advantages_are_computed_per_group():
    scores = torch.tensor([[0.0, 1.0, 2.0], [10.0, 10.0, 13.0], [-5.0, 0.0, 5.0]], dtype=torch.float64)
    rows = scores.tolist()
    rloo = [[x - statistics.fmean(row[:i] + row[i + 1:]) for i, x in enumerate(row)] for row in rows]
    grpo = [[(x - statistics.fmean(row)) / (statistics.stdev(row) + 1e-6) for x in row] for row in rows]
    torch.testing.assert_close(group_advantages(scores, "rloo"), torch.tensor(rloo, dtype=torch.float64),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(group_advantages(scores, "grpo"), torch.tensor(grpo, dtype=torch.float64),
                               rtol=0, atol=1e-12)
