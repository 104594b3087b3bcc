"""Hidden tests of a5: the fixed points. With Bradley-Terry labels from a true reward r over every pair of
K responses, the expected Bradley-Terry loss is stationary at r (up to a shift), the classification loss
of one pair at logit(p), and the expected DPO loss at pi* = pi_ref exp(r / beta) / Z -- the KL-regularised
optimum, in closed form (docs/equations.md §6)."""

import itertools
import math

import pytest
import torch

from minirl.algos.dpo import dpo_loss
from minirl.algos.reward_model import bradley_terry_loss, classification_loss

TRUE_R = [0.0, 1.0, -0.5, 2.0]
PAIRS = list(itertools.combinations(range(4), 2))


def bt_probability(i: int, j: int) -> float:
    return 1.0 / (1.0 + math.exp(TRUE_R[j] - TRUE_R[i]))


def pair_tensors():
    first = torch.tensor([i for i, _ in PAIRS])
    second = torch.tensor([j for _, j in PAIRS])
    label = torch.tensor([bt_probability(i, j) for i, j in PAIRS], dtype=torch.float64)
    return first, second, label


@pytest.mark.points(2)
def test_bradley_terry_loss_is_stationary_at_the_true_reward():
    first, second, label = pair_tensors()
    r = torch.tensor([x + 7.0 for x in TRUE_R], dtype=torch.float64, requires_grad=True)  # any shift
    bradley_terry_loss(r[first], r[second], label).backward()
    torch.testing.assert_close(r.grad, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.points(2)
def test_classification_loss_is_stationary_at_the_logits_of_the_label():
    p = 0.8
    r_c = torch.tensor([math.log(p / (1 - p))], dtype=torch.float64, requires_grad=True)
    r_r = torch.tensor([math.log((1 - p) / p)], dtype=torch.float64, requires_grad=True)
    classification_loss(r_c, r_r, torch.tensor([p], dtype=torch.float64)).backward()
    assert abs(float(r_c.grad)) < 1e-12 and abs(float(r_r.grad)) < 1e-12


@pytest.mark.points(3)
def test_dpo_is_stationary_at_the_kl_regularised_optimum():
    beta = 0.5
    ref = [0.1, 0.4, 0.3, 0.2]
    unnormalised = [q * math.exp(r / beta) for q, r in zip(ref, TRUE_R)]
    optimum = [u / sum(unnormalised) for u in unnormalised]
    first, second, label = pair_tensors()
    logits = torch.tensor([math.log(x) for x in optimum], dtype=torch.float64, requires_grad=True)
    logp = torch.log_softmax(logits, 0)
    log_ref = torch.tensor([math.log(q) for q in ref], dtype=torch.float64)
    loss, _ = dpo_loss(logp[first], logp[second], log_ref[first], log_ref[second], beta, label)
    loss.backward()
    torch.testing.assert_close(logits.grad, torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-12)
    # and the reference itself is not stationary (the data prefer something else)
    logits2 = torch.tensor([math.log(q) for q in ref], dtype=torch.float64, requires_grad=True)
    lp2 = torch.log_softmax(logits2, 0)
    dpo_loss(lp2[first], lp2[second], log_ref[first], log_ref[second], beta, label)[0].backward()
    assert logits2.grad.abs().max() > 1e-3
