"""REINFORCE / RLOO / GRPO advantages against their definitions (docs/equations.md §6)."""

import pytest
import torch

from minirl.algos.group_advantages import group_advantages


def test_grpo_advantages_sum_to_zero_per_group_with_unit_spread():
    scores = torch.randn(5, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = group_advantages(scores, "grpo")
    torch.testing.assert_close(a.sum(1), torch.zeros(5, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(a.std(1), torch.ones(5, dtype=torch.float64), atol=1e-5, rtol=0)


def test_rloo_is_reward_minus_the_mean_of_the_others():
    scores = torch.tensor([[1.0, 2.0, 6.0]])
    a = group_advantages(scores, "rloo")
    torch.testing.assert_close(a, torch.tensor([[1.0 - 4.0, 2.0 - 3.5, 6.0 - 1.5]]))


def test_reinforce_uses_one_batch_baseline():
    scores = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    torch.testing.assert_close(group_advantages(scores, "reinforce"), scores - 4.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="estimator: unknown estimator 'ppo'"):
        group_advantages(torch.zeros(2, 2), "ppo")
    with pytest.raises(ValueError, match="scores: must have shape"):
        group_advantages(torch.zeros(4), "grpo")
    with pytest.raises(ValueError, match="needs G >= 2"):
        group_advantages(torch.zeros(3, 1), "rloo")
