"""minirl.estimators (pair accuracy, correlation, within-group slope) and minirl.mistakes.slips, by hand
(docs/equations.md §5, §2)."""

import math

import pytest
import torch

from minirl.estimators import correlation, pair_accuracy, within_group_slope
from minirl.mistakes import slips


def test_pair_accuracy_by_hand():
    g_c, g_r = torch.tensor([1.0, 2.0, 0.0, 3.0, 5.0]), torch.tensor([0.0, 3.0, -1.0, 3.0, 1.0])  # pair 3: tied gold
    s_c, s_r = torch.tensor([2.0, 1.0, 0.5, 9.0, 4.0]), torch.tensor([1.0, 0.0, 0.5, 0.0, 4.0])
    # informative pairs 0, 1, 2, 4: agree, disagree, score tie (1/2), score tie (1/2)
    assert pair_accuracy(s_c, s_r, g_c, g_r) == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert pair_accuracy(g_c, g_r, g_c, g_r) == 1.0 and pair_accuracy(-g_c, -g_r, g_c, g_r) == 0.0
    assert math.isnan(pair_accuracy(s_c[3:4], s_r[3:4], g_c[3:4], g_r[3:4]))  # every pair tied in gold


def test_correlation_by_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    assert correlation(x, 3 * x - 1) == pytest.approx(1.0) and correlation(x, -x) == pytest.approx(-1.0)
    y = torch.tensor([1.0, 3.0, 2.0, 4.0], dtype=torch.float64)  # cov 1.0 / var 1.25 each
    assert correlation(x, y) == pytest.approx(0.8)
    assert math.isnan(correlation(x, torch.ones(4))) and math.isnan(correlation(x[:1], y[:1]))


def test_within_group_slope_ignores_a_shift_per_group():
    x = torch.tensor([0.0, 1.0, 2.0, 5.0, 7.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 0, 1, 1])
    shift = torch.tensor([10.0, 10.0, 10.0, -3.0, -3.0], dtype=torch.float64)
    assert within_group_slope(x, 0.5 * x + shift, group) == pytest.approx(0.5, rel=1e-12)
    # by hand: centred x = (-1, 0, 1, -1, 1), y = (0, 1, 5 | 0, 1) centred (-2, -1, 3 | -0.5, 0.5) -> (5 + 1) / 4
    y = torch.tensor([0.0, 1.0, 5.0, 0.0, 1.0], dtype=torch.float64)
    assert within_group_slope(x, y, group) == pytest.approx(6 / 4)
    assert math.isnan(within_group_slope(torch.ones(5, dtype=torch.float64), y, group))


def test_slips_by_hand():
    out = slips(torch.tensor([0.0, 3.0, 1.0, 0.0]))
    assert out == {"mistakes": 1.0, "slip_rate": 0.5, "mistakes_after_first": 1.0}
    assert slips(torch.zeros(3)) == {"mistakes": 0.0, "slip_rate": 0.0, "mistakes_after_first": 0.0}
