"""Public tests of a6 (best-of-N): the mass of the best of N draws, the exact best-of-N distribution, and
the unbiased pool weights.

Oracles: enumeration. Every N-tuple of draws is listed with its probability and the first draw with the
highest reward wins; every N-subset of a pool of M ranked samples is listed and its best counted.
"""

import itertools
import math

import pytest
import torch

from minirl.algos.best_of_n import best_of_n_distribution, best_of_n_mass, pool_best_of_n_weights


def enumerate_best_of_n(p, rewards, n):
    out = [0.0] * len(p)
    for draws in itertools.product(range(len(p)), repeat=n):
        prob = math.prod(p[i] for i in draws)
        best = max(rewards[i] for i in draws)
        winner = next(i for i in draws if rewards[i] == best)
        out[winner] += prob
    return out


@pytest.mark.points(1)
def test_best_of_n_mass():
    upper = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)
    lower = torch.tensor([0.0, 0.2, 0.5], dtype=torch.float64)
    expected = [u ** 3 - l ** 3 for u, l in zip(upper.tolist(), lower.tolist())]
    torch.testing.assert_close(best_of_n_mass(upper, lower, 3), torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-15)


@pytest.mark.points(1)
@pytest.mark.parametrize("n", [1, 2, 4])
def test_best_of_n_distribution_matches_enumeration(n):
    p = [0.1, 0.4, 0.2, 0.3]
    rewards = [0.5, -1.0, 2.0, 0.0]
    got = best_of_n_distribution(torch.tensor(p, dtype=torch.float64), torch.tensor(rewards, dtype=torch.float64), n)
    torch.testing.assert_close(got, torch.tensor(enumerate_best_of_n(p, rewards, n), dtype=torch.float64),
                               rtol=0, atol=1e-12)


@pytest.mark.points(2)
def test_pool_weights_match_enumerating_subsets():
    M, n = 7, 3
    counts = [0] * M
    for subset in itertools.combinations(range(M), n):  # ranks 0..M-1, ascending
        counts[max(subset)] += 1
    expected = [c / math.comb(M, n) for c in counts]
    torch.testing.assert_close(pool_best_of_n_weights(M, n), torch.tensor(expected, dtype=torch.float64),
                               rtol=0, atol=1e-12)
