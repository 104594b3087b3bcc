"""Public tests of a7 (evaluating language policies): the Monte-Carlo KL estimate from a policy's own
samples, and RLHF's KL-penalised reward.

Oracles: the estimate's value and standard error are the mean and standard error of the per-sample
log-ratios, computed here with :mod:`statistics`; the penalised reward is laid out step by step in Python.
"""

import math
import statistics

import pytest
import torch

from minirl.algos.kl_penalty import kl_penalised_reward
from minirl.estimators import monte_carlo_kl


@pytest.mark.points(2)
def test_monte_carlo_kl_is_the_mean_log_ratio_under_the_sampler():
    logp = [-1.0, -0.5, -2.0, -0.1, -1.5]  # log p(y_i) of samples y_i ~ p
    logq = [-1.2, -1.5, -1.0, -0.3, -2.5]  # log q(y_i) of the same samples
    est = monte_carlo_kl(torch.tensor(logp, dtype=torch.float64), torch.tensor(logq, dtype=torch.float64))
    ratios = [a - b for a, b in zip(logp, logq)]
    assert est.value == pytest.approx(statistics.fmean(ratios), abs=1e-12)
    assert est.se == pytest.approx(statistics.stdev(ratios) / math.sqrt(5), abs=1e-12)
    assert est.off_support == 0.0 and est.n == 5


@pytest.mark.points(2)
def test_kl_penalised_reward_step_by_step():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.2, -0.3, -9.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.4, -0.1, -1.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    score = torch.tensor([3.0, -1.0], dtype=torch.float64)
    beta = 0.1
    expected = [[0.0] * 3 for _ in range(2)]
    sums = [0.0, 0.0]
    for b in range(2):
        real = [t for t in range(3) if mask[b, t]]
        for t in real:
            ratio = float(logp[b, t] - ref[b, t])
            expected[b][t] = -beta * ratio
            sums[b] += ratio
        expected[b][real[-1]] += float(score[b])
    rewards, log_ratio = kl_penalised_reward(score, logp, ref, mask, beta)
    torch.testing.assert_close(rewards, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(log_ratio, torch.tensor(sums, dtype=torch.float64), rtol=0, atol=1e-12)
