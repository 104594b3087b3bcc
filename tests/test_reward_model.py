"""Reward models from preferences: closed forms and recovery of a known reward (docs/equations.md §5)."""

import math

import pytest
import torch

from minirl.algos.reward_model import (LinearRewardModel, RewardModelConfig, TabularRewardModel, bradley_terry_loss,
                                       classification_loss, train_reward_model)
from minirl.data import Preferences, TrajectoryBatch


def test_losses_by_hand():
    bt = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]))
    assert bt.item() == pytest.approx(math.log(1 + math.exp(-1.0)))
    soft = bradley_terry_loss(torch.tensor([1.0]), torch.tensor([0.0]), torch.tensor([0.8]))
    assert soft.item() == pytest.approx(0.8 * math.log(1 + math.exp(-1)) + 0.2 * math.log(1 + math.exp(1)))
    cls = classification_loss(torch.tensor([1.0]), torch.tensor([0.0]))
    assert cls.item() == pytest.approx((math.log(1 + math.exp(-1.0)) + math.log(2)) / 2)
    # BT sees differences only; classification sees each score
    assert bradley_terry_loss(torch.tensor([6.0]), torch.tensor([5.0])).item() == pytest.approx(bt.item())
    assert classification_loss(torch.tensor([6.0]), torch.tensor([5.0])).item() != pytest.approx(cls.item())


def _embedding_prefs(n=400, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(2 * n, d, generator=g, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    ids = torch.arange(2 * n)[:, None]  # each "trajectory" is one step whose obs indexes its embedding
    chosen = TrajectoryBatch(obs=ids[:n], actions=torch.zeros(n, 1, dtype=torch.long), mask=torch.ones(n, 1, dtype=torch.bool))
    rejected = TrajectoryBatch(obs=ids[n:], actions=torch.zeros(n, 1, dtype=torch.long),
                               mask=torch.ones(n, 1, dtype=torch.bool))
    p = torch.sigmoid(phi[:n] @ w_true - phi[n:] @ w_true)  # noiseless: the labeller's exact BT probability
    return phi, w_true, Preferences(chosen, rejected, p)


def test_bradley_terry_recovers_a_linear_gold_reward_from_noiseless_labels():
    phi, w_true, prefs = _embedding_prefs()
    model = LinearRewardModel(lambda batch: phi[batch.obs[:, 0]], phi.shape[1]).double()
    history = train_reward_model(model, prefs, RewardModelConfig(objective="bt", n_updates=800, lr=0.05,
                                                                 use_strength=True))
    torch.testing.assert_close(model.w.detach(), w_true, atol=1e-3, rtol=0)
    assert history[-1] < history[0]


def test_tabular_reward_model_ranks_trajectories_like_the_true_reward():
    """Trajectory preferences from a per-(s, a) reward: the learned table orders held-out pairs correctly."""
    g = torch.Generator().manual_seed(1)
    S, A, T, n = 4, 3, 5, 600
    R_true = torch.randn(S, A, generator=g)
    obs, actions = torch.randint(S, (2 * n, T), generator=g), torch.randint(A, (2 * n, T), generator=g)
    returns = R_true[obs, actions].sum(1)
    batches = [TrajectoryBatch(obs=obs[k * n:(k + 1) * n], actions=actions[k * n:(k + 1) * n],
                               mask=torch.ones(n, T, dtype=torch.bool)) for k in range(2)]
    better = returns[:n] > returns[n:]
    chosen = TrajectoryBatch(obs=torch.where(better[:, None], obs[:n], obs[n:]),
                             actions=torch.where(better[:, None], actions[:n], actions[n:]), mask=batches[0].mask)
    rejected = TrajectoryBatch(obs=torch.where(better[:, None], obs[n:], obs[:n]),
                               actions=torch.where(better[:, None], actions[n:], actions[:n]), mask=batches[0].mask)
    model = TabularRewardModel(S, A)
    train_reward_model(model, Preferences(chosen[torch.arange(500)], rejected[torch.arange(500)]),
                       RewardModelConfig(n_updates=400, lr=0.05))
    with torch.no_grad():
        accuracy = (model.score(chosen[torch.arange(500, n)]) > model.score(rejected[torch.arange(500, n)])).float()
    assert accuracy.mean().item() > 0.9
    # BT identifies R up to a constant per step: compare centred tables
    learned, true = model.R.detach().flatten(), R_true.flatten()
    corr = torch.corrcoef(torch.stack([learned - learned.mean(), true - true.mean()]))[0, 1]
    assert corr.item() > 0.9


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="objective: unknown objective 'ranking'"):
        RewardModelConfig(objective="ranking")
    phi, _, prefs = _embedding_prefs(n=4)
    model = LinearRewardModel(lambda batch: phi[batch.obs[:, 0]][:, :3], phi.shape[1]).double()
    with pytest.raises(ValueError, match="features: must return"):
        train_reward_model(model, prefs)
    with pytest.raises(ValueError, match="use_strength=True needs"):
        train_reward_model(model, Preferences(prefs.chosen, prefs.rejected), RewardModelConfig(use_strength=True))
