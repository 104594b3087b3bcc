"""Hidden tests of a6: ties (outcomes with equal rewards share their level's mass in proportion to p),
and the pool weights of a large pool against exact integer binomials."""

import itertools
import math
from fractions import Fraction

import pytest
import torch

from minirl.algos.best_of_n import best_of_n_distribution, pool_best_of_n_weights


def enumerate_best_of_n(p, rewards, n):
    out = [0.0] * len(p)
    for draws in itertools.product(range(len(p)), repeat=n):
        prob = math.prod(p[i] for i in draws)
        best = max(rewards[i] for i in draws)
        winner = next(i for i in draws if rewards[i] == best)  # the first draw at the top level
        out[winner] += prob
    return out


@pytest.mark.points(3)
def test_best_of_n_distribution_with_ties():
    p = [0.15, 0.25, 0.1, 0.3, 0.2]
    rewards = [1.0, 0.0, 1.0, -2.0, 0.0]
    for n in (2, 3):
        got = best_of_n_distribution(torch.tensor(p, dtype=torch.float64), torch.tensor(rewards, dtype=torch.float64), n)
        torch.testing.assert_close(got, torch.tensor(enumerate_best_of_n(p, rewards, n), dtype=torch.float64),
                                   rtol=0, atol=1e-12)


@pytest.mark.points(2)
def test_pool_weights_of_a_large_pool_are_exact():
    M, n = 60, 25
    got = pool_best_of_n_weights(M, n)
    total = math.comb(M, n)
    for rank in (25, 40, 60):  # 1-based ascending rank i: C(i - 1, n - 1) / C(M, n)
        exact = float(Fraction(math.comb(rank - 1, n - 1), total))
        assert float(got[rank - 1]) == pytest.approx(exact, rel=1e-10, abs=1e-300)
    assert float(got[: n - 1].abs().max()) == 0.0
