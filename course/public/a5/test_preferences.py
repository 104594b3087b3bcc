"""Public tests of a5 (preferences): the Bradley-Terry loss, the classification loss, and DPO.

Oracles: each loss written out in plain Python (math.log of a logistic), hard and soft labels.
"""

import math

import pytest
import torch

from minirl.algos.dpo import dpo_loss
from minirl.algos.reward_model import bradley_terry_loss, classification_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


R_CHOSEN = [1.0, 0.2, -0.5, 3.0]
R_REJECTED = [0.0, 0.7, -0.5, -1.0]
LABEL = [1.0, 0.8, 0.5, 0.0]


def t(x):
    return torch.tensor(x, dtype=torch.float64)


@pytest.mark.points(2)
def test_bradley_terry_loss_with_hard_and_soft_labels():
    hard = -sum(log_sigmoid(c - r) for c, r in zip(R_CHOSEN, R_REJECTED)) / 4
    soft = -sum(p * log_sigmoid(c - r) + (1 - p) * log_sigmoid(r - c)
                for c, r, p in zip(R_CHOSEN, R_REJECTED, LABEL)) / 4
    assert float(bradley_terry_loss(t(R_CHOSEN), t(R_REJECTED))) == pytest.approx(hard, abs=1e-12)
    assert float(bradley_terry_loss(t(R_CHOSEN), t(R_REJECTED), t(LABEL))) == pytest.approx(soft, abs=1e-12)


@pytest.mark.points(2)
def test_classification_loss_with_soft_labels():
    expected = sum(-(p * log_sigmoid(c) + (1 - p) * log_sigmoid(-c)) - ((1 - p) * log_sigmoid(r) + p * log_sigmoid(-r))
                   for c, r, p in zip(R_CHOSEN, R_REJECTED, LABEL)) / 4 / 2
    assert float(classification_loss(t(R_CHOSEN), t(R_REJECTED), t(LABEL))) == pytest.approx(expected, abs=1e-12)


@pytest.mark.points(2)
def test_dpo_loss_is_bradley_terry_on_implicit_rewards():
    logp_c, logp_r = [-3.0, -1.0, -2.5], [-2.0, -4.0, -2.5]
    ref_c, ref_r = [-2.5, -1.5, -3.0], [-2.2, -3.0, -2.0]
    beta, label = 0.3, [1.0, 0.9, 0.2]
    expected = 0.0
    for lc, lr, rc, rr, p in zip(logp_c, logp_r, ref_c, ref_r, label):
        margin = beta * ((lc - rc) - (lr - rr))
        expected -= p * log_sigmoid(margin) + (1 - p) * log_sigmoid(-margin)
    loss, _ = dpo_loss(t(logp_c), t(logp_r), t(ref_c), t(ref_r), beta, t(label))
    assert float(loss) == pytest.approx(expected / 3, abs=1e-12)
