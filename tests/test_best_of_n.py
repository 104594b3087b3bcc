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


# -- from samples ---------------------------------------------------------------------------------------

import itertools  # noqa: E402

from minirl.algos.best_of_n import (best_of_first_n, best_of_n_mass, pool_best_of_n,  # noqa: E402
                                    pool_best_of_n_weights, select_best)


def test_best_of_n_mass_is_the_probability_that_the_best_lands_in_a_block():
    # P(max of N uniform draws on {0..9} = 6) = (7/10)^N - (6/10)^N, by counting all 10^N outcomes
    for n in (1, 2, 3):
        hits = sum(max(o) == 6 for o in itertools.product(range(10), repeat=n))
        assert float(best_of_n_mass(torch.tensor(0.7, dtype=torch.float64), torch.tensor(0.6, dtype=torch.float64),
                                    n)) == pytest.approx(hits / 10 ** n, abs=1e-12)


def test_select_best_and_best_of_first_n_by_hand():
    assert torch.equal(select_best(torch.tensor([0.0, 2.0, 1.0, 3.0, 3.0, 0.0]), 3), torch.tensor([1, 3]))  # ties: first
    with pytest.raises(ValueError, match="scores: need one score per pool row"):
        select_best(torch.zeros(5), 2)
    gold = torch.tensor([[1.0, 5.0, -2.0, 9.0], [0.0, -1.0, 3.0, 2.0]], dtype=torch.float64)
    assert best_of_first_n(gold, gold, 4) == pytest.approx((9.0 + 3.0) / 2)
    assert best_of_first_n(-gold, gold, 4) == pytest.approx((-2.0 - 1.0) / 2)
    assert best_of_first_n(gold, gold, 2) == pytest.approx((5.0 + 0.0) / 2)  # only the first n candidates
    assert best_of_first_n(torch.zeros_like(gold), gold, 3) == pytest.approx((1.0 + 0.0) / 2)  # ties: the first
    with pytest.raises(ValueError, match="scores, values: need two"):
        best_of_first_n(gold, gold, 5)


def test_pool_weights_equal_exhaustive_subsets():
    M = 7
    for n in (1, 2, 3, 7):
        counts = torch.zeros(M, dtype=torch.float64)
        subsets = list(itertools.combinations(range(M), n))
        for s in subsets:
            counts[max(s)] += 1  # ranks ascending: the best of a subset is its largest rank
        torch.testing.assert_close(pool_best_of_n_weights(M, n), counts / len(subsets))
    with pytest.raises(ValueError, match="n: must be <= pool_size"):
        pool_best_of_n_weights(4, 5)


def test_pooled_estimate_matches_the_exact_best_of_n_distribution():
    """The pool estimator against pi_BoN = F^N - F_-^N on a finite distribution (no ties in the scores)."""
    g = torch.Generator().manual_seed(3)
    p = torch.distributions.Dirichlet(torch.ones(12, dtype=torch.float64)).sample()
    r = torch.randn(12, generator=g, dtype=torch.float64)
    v = torch.randn(12, generator=g, dtype=torch.float64)  # any value of the outcomes, e.g. a gold reward
    X, M, ns = 400, 32, [1, 2, 8, 32]
    draws = torch.multinomial(p, X * M, replacement=True, generator=g).view(X, M)  # (X, M)
    rows = pool_best_of_n(r[draws], {"gold": v[draws], "proxy": r[draws]}, ns)
    for row, n in zip(rows, ns):
        q = best_of_n_distribution(p, r, n)
        assert row["n"] == n and row["kl"] == pytest.approx(best_of_n_kl_bound(n)) and row["d"] ** 2 == pytest.approx(row["kl"])
        assert abs(row["gold"] - float(q @ v)) < 4 * row["gold_se"]
        assert abs(row["proxy"] - float(q @ r)) < 4 * row["proxy_se"]
    assert rows[0]["gold_gain"] == pytest.approx(0.0, abs=1e-12)  # N = 1 is the pool mean
    with pytest.raises(ValueError, match="ns: every N must be <="):
        pool_best_of_n(r[draws], {"gold": v[draws]}, [64])
    with pytest.raises(ValueError, match="ns: must be a non-empty sequence"):
        pool_best_of_n(r[draws], {"gold": v[draws]}, [])


def test_pool_best_of_n_estimates_by_hand():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(5, 16, generator=g, dtype=torch.float64)
    other = torch.randn(5, 16, generator=g, dtype=torch.float64)
    rows = pool_best_of_n(scores, {"s": scores, "v": other}, [1, 2, 16])
    assert [r["n"] for r in rows] == [1, 2, 16]
    assert rows[0]["s_gain"] == pytest.approx(0.0, abs=1e-12) and rows[0]["v"] == pytest.approx(float(other.mean()))
    # N = M: the best of the whole pool, exactly
    best = other.gather(1, scores.argmax(1, keepdim=True)).squeeze(1)
    assert rows[-1]["v"] == pytest.approx(float(best.mean()))
    assert rows[-1]["s"] == pytest.approx(float(scores.max(1)[0].mean()))
    w = pool_best_of_n_weights(16, 2)
    assert rows[1]["v"] == pytest.approx(float((other.gather(1, scores.argsort(1)) @ w).mean()))
    assert rows[1]["kl"] == pytest.approx(math.log(2) - 0.5) and rows[1]["d"] == pytest.approx(math.sqrt(rows[1]["kl"]))
    with pytest.raises(ValueError, match="ns"):
        pool_best_of_n(scores, {"v": other}, [32])
    with pytest.raises(ValueError, match="values"):
        pool_best_of_n(scores, {"v": other[:, :4]}, [2])
