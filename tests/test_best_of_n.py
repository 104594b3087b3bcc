"""Best-of-N: the exact distribution and KL against the bound and against Monte-Carlo (docs/equations.md §6)."""

import math

import pytest
import torch

from minirl.algos.best_of_n import best_of_n_distribution, best_of_n_kl, best_of_n_kl_bound, sample_best_of_n


def test_distribution_by_hand():
    p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    r = torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64)  # order by reward: y0 < y2 < y1
    q = best_of_n_distribution(p, r, 2)
    # F: y0 0.5, y2 0.7, y1 1.0 -> q(y0) = 0.25, q(y2) = 0.49 - 0.25, q(y1) = 1 - 0.49
    torch.testing.assert_close(q, torch.tensor([0.25, 0.51, 0.24], dtype=torch.float64))
    torch.testing.assert_close(best_of_n_distribution(p, r, 1), p)  # N = 1 is the reference


def test_ties_share_their_block_in_proportion_to_p():
    p = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    r = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    q = best_of_n_distribution(p, r, 3)
    block = 1 - 0.6 ** 3  # the best of 3 is in the top block unless all three draws are y2
    torch.testing.assert_close(q, torch.tensor([block / 2, block / 2, 0.6 ** 3], dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 4, 16, 64])
def test_exact_kl_respects_the_bound_and_meets_it_when_no_outcome_is_heavy(n):
    g = torch.Generator().manual_seed(0)
    p = torch.distributions.Dirichlet(torch.ones(50, dtype=torch.float64)).sample()
    r = torch.randn(50, generator=g, dtype=torch.float64)
    assert best_of_n_kl(p, r, n) <= best_of_n_kl_bound(n) + 1e-12
    uniform = torch.full((100_000,), 1e-5, dtype=torch.float64)  # no outcome has noticeable probability
    flat = torch.randperm(100_000, generator=g).double()
    assert best_of_n_kl(uniform, flat, n) == pytest.approx(best_of_n_kl_bound(n), abs=2e-3)


def test_exact_distribution_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    p = torch.tensor([0.05, 0.4, 0.25, 0.2, 0.1], dtype=torch.float64)
    r = torch.tensor([3.0, 0.0, 1.0, 2.0, 2.0], dtype=torch.float64)  # a tie at 2
    q = best_of_n_distribution(p, r, 4)
    samples = sample_best_of_n(p, r, 4, 200_000, generator=g)
    counts = torch.bincount(samples, minlength=5).double() / 200_000
    # the sampler keeps the first of tied draws: within the tie that one is distributed as p, like q
    torch.testing.assert_close(counts, q, atol=5e-3, rtol=0)
    monte_carlo_kl = (counts * (counts / p).log()).sum().item()
    assert best_of_n_kl(p, r, 4) == pytest.approx(monte_carlo_kl, abs=0.01)


def test_bad_input_is_refused():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    with pytest.raises(ValueError, match="n: must be an integer >= 1"):
        best_of_n_distribution(p, torch.zeros(2), 0)
    with pytest.raises(ValueError, match="p: must be a probability distribution"):
        best_of_n_distribution(torch.tensor([0.5, 0.6]), torch.zeros(2), 2)
    with pytest.raises(ValueError, match="p, rewards: must be two vectors of the same length"):
        best_of_n_distribution(p, torch.zeros(3), 2)
    assert math.isclose(best_of_n_kl_bound(1), 0.0)
