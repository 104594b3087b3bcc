"""minirl.preferences: the one labeller, by hand on given uniforms and against the Bradley-Terry probability
(docs/equations.md §5)."""

import math

import pytest
import torch

from minirl.data import Preferences, TrajectoryBatch
from minirl.preferences import draw_uniforms, label_pairs, resample_pairs


def test_rules_by_hand():
    r_a, r_b = torch.tensor([1.0, 0.0, 2.0, 2.0]), torch.tensor([0.0, 1.0, 2.0, -1.0])
    prefer, flipped = label_pairs(r_a, r_b)
    assert prefer.tolist() == [True, False, True, True] and not flipped.any()  # a tie keeps a
    # temperature 1: P(a) = sigma(r_a - r_b) = [0.731, 0.269, 0.5, 0.953]
    u = torch.tensor([0.7, 0.3, 0.6, 0.9])
    assert label_pairs(r_a, r_b, 1.0, u_choice=u)[0].tolist() == [True, False, False, True]
    v = torch.tensor([0.05, 0.5, 0.15, 0.0])  # flips where v < 0.1
    prefer, flipped = label_pairs(r_a, r_b, 0.0, 0.1, u_flip=v)
    assert flipped.tolist() == [True, False, False, True] and prefer.tolist() == [False, False, True, False]


def test_choice_frequency_is_the_bradley_terry_probability():
    n, tau = 200_000, 2.0
    g = torch.Generator().manual_seed(0)
    r_a, r_b = torch.full((n,), 1.5), torch.zeros(n)
    u, v = draw_uniforms(n, g)
    p = 1 / (1 + math.exp(-1.5 / tau))
    freq = float(label_pairs(r_a, r_b, tau, 0.0, u, v)[0].double().mean())
    assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / n)
    # with flips eps the chosen-is-a probability becomes p (1 - eps) + (1 - p) eps
    prefer, flipped = label_pairs(r_a, r_b, tau, 0.3, u, v)
    q = p * 0.7 + (1 - p) * 0.3
    assert abs(float(prefer.double().mean()) - q) < 4 * math.sqrt(q * (1 - q) / n)
    assert abs(float(flipped.double().mean()) - 0.3) < 4 * math.sqrt(0.21 / n)


def test_draw_order_is_choice_then_flips():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    u, v = draw_uniforms(10, g1)
    assert torch.equal(u, torch.rand(10, generator=g2)) and torch.equal(v, torch.rand(10, generator=g2))


def test_bad_input_is_refused():
    r = torch.zeros(3)
    with pytest.raises(ValueError, match="u_choice: uniforms are needed"):
        label_pairs(r, r, 1.0)
    with pytest.raises(ValueError, match="u_flip: uniforms are needed"):
        label_pairs(r, r, 0.0, 0.2)
    with pytest.raises(ValueError, match="noise: must be <= 1"):
        label_pairs(r, r, 0.0, 1.5)
    with pytest.raises(ValueError, match="temperature: must be >= 0"):
        label_pairs(r, r, -1.0)
    with pytest.raises(ValueError, match="r_a, r_b: need two reward vectors"):
        label_pairs(r, torch.zeros(4))
    with pytest.raises(ValueError, match="u_flip: must have the pairs' shape"):
        label_pairs(r, r, 0.0, 0.1, u_flip=torch.zeros(2))


def test_resample_pairs_draws_whole_pairs_with_replacement():
    ids = torch.arange(6)[:, None]
    batch = lambda x: TrajectoryBatch(obs=x, actions=x, mask=torch.ones_like(x, dtype=torch.bool))  # noqa: E731
    prefs = Preferences(chosen=batch(ids), rejected=batch(ids + 10))
    g, again = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    out = resample_pairs(prefs, g)
    idx = torch.randint(6, (6,), generator=again)
    assert torch.equal(out.chosen.actions[:, 0], idx) and torch.equal(out.rejected.actions[:, 0], idx + 10)
