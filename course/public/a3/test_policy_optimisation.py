"""Public tests of a3 (policy optimisation): GAE, PPO's clipped surrogate and value loss, and the
REINFORCE / RLOO / GRPO advantages.

Oracles: GAE as its definition, A_t = sum_k (gamma lambda)^k delta_{t+k} summed forward within an
episode in plain Python (not the backward recursion); the losses element by element with Python's min
and max; the group advantages by leaving one out explicitly and by the sample standard deviation of
:mod:`statistics`.
"""

import statistics

import pytest
import torch

from minirl.algos.group_advantages import group_advantages
from minirl.algos.ppo import clipped_surrogate, clipped_value_loss, gae


def gae_by_definition(rewards, values, next_values, ends, mask, gamma, lam):
    """Forward sums of discounted TD errors, stopping at an episode's end or at padding."""
    B, T = len(rewards), len(rewards[0])
    adv = [[0.0] * T for _ in range(B)]
    for b in range(B):
        for t in range(T):
            if not mask[b][t]:
                continue
            total, weight = 0.0, 1.0
            for k in range(t, T):
                if not mask[b][k]:
                    break
                total += weight * (rewards[b][k] + gamma * next_values[b][k] - values[b][k])
                if ends[b][k]:
                    break
                weight *= gamma * lam
            adv[b][t] = total
    return adv


def random_rollout(seed, B=3, T=7):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(B, T, generator=g, dtype=torch.float64)
    values = torch.randn(B, T, generator=g, dtype=torch.float64)
    next_values = torch.cat([values[:, 1:], torch.randn(B, 1, generator=g, dtype=torch.float64)], 1)
    ends = torch.zeros(B, T, dtype=torch.bool)
    ends[0, 3] = True  # an episode ends mid-fragment; the next one starts at t = 4
    next_values[0, 3] = 0.0  # it terminated
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[2, 5:] = False  # padding
    ends[2, 4] = True
    return rewards, values, next_values, ends, mask


@pytest.mark.points(3)
def test_gae_is_the_discounted_sum_of_td_errors_within_an_episode():
    rewards, values, next_values, ends, mask = random_rollout(0)
    gamma, lam = 0.9, 0.8
    adv, ret = gae(rewards, values, next_values, ends, mask, gamma, lam)
    expected = torch.tensor(gae_by_definition(rewards.tolist(), values.tolist(), next_values.tolist(),
                                              ends.tolist(), mask.tolist(), gamma, lam), dtype=torch.float64)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(ret, torch.where(mask, expected + values, torch.zeros_like(values)), rtol=0, atol=1e-12)


@pytest.mark.points(2)
def test_clipped_surrogate_element_by_element():
    ratio = torch.tensor([0.5, 0.9, 1.0, 1.1, 1.5, 0.5, 0.9, 1.1, 1.5], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, 2.0, 1.0, 1.0, -1.0, -1.0, -1.0, -2.0], dtype=torch.float64)
    eps = 0.2
    expected = [-min(r * a, max(1 - eps, min(1 + eps, r)) * a) for r, a in zip(ratio.tolist(), adv.tolist())]
    torch.testing.assert_close(clipped_surrogate(ratio, adv, eps), torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-15)


@pytest.mark.points(2)
def test_value_loss_plain_and_clipped():
    values = torch.tensor([1.0, 0.0, 2.0, -1.0], dtype=torch.float64)
    old = torch.tensor([0.0, 0.5, 1.9, 0.0], dtype=torch.float64)
    returns = torch.tensor([0.5, 1.0, 0.0, -2.0], dtype=torch.float64)
    plain = [0.5 * (v - r) ** 2 for v, r in zip(values.tolist(), returns.tolist())]
    torch.testing.assert_close(clipped_value_loss(values, old, returns, None), torch.tensor(plain, dtype=torch.float64),
                               rtol=0, atol=1e-15)
    eps = 0.2
    clipped = []
    for v, o, r in zip(values.tolist(), old.tolist(), returns.tolist()):
        vc = o + max(-eps, min(eps, v - o))
        clipped.append(0.5 * max((v - r) ** 2, (vc - r) ** 2))
    torch.testing.assert_close(clipped_value_loss(values, old, returns, eps), torch.tensor(clipped, dtype=torch.float64),
                               rtol=0, atol=1e-15)


@pytest.mark.points(3)
def test_reinforce_rloo_and_grpo_advantages():
    scores = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.5, 0.5, -1.0, 4.0]], dtype=torch.float64)
    rows = scores.tolist()
    everything = [x for row in rows for x in row]
    reinforce = [[x - statistics.fmean(everything) for x in row] for row in rows]
    rloo = [[x - statistics.fmean(row[:i] + row[i + 1:]) for i, x in enumerate(row)] for row in rows]
    grpo = [[(x - statistics.fmean(row)) / (statistics.stdev(row) + 1e-6) for x in row] for row in rows]
    for name, expected in (("reinforce", reinforce), ("rloo", rloo), ("grpo", grpo)):
        torch.testing.assert_close(group_advantages(scores, name), torch.tensor(expected, dtype=torch.float64),
                                   rtol=0, atol=1e-12, msg=lambda m: f"{name}: {m}")
