"""Hidden tests of a2: the BC gradient against the exact softmax gradient, padding that must not count,
and an aggregation that keeps the old data first and drops what belongs to the behaviour policy."""

import pytest
import torch

from minirl.algos import aggregate, bc_loss
from minirl.data import TrajectoryBatch
from minirl.policies import TabularPolicy


class TableExpert:
    def __init__(self, best):
        self.best = torch.as_tensor(best)

    def label(self, batch):
        return self.best[batch.obs]


def exact_gradient(theta: torch.Tensor, obs, actions, mask) -> torch.Tensor:
    """d/dtheta of the mean NLL: (softmax(theta[s]) - onehot(a)) / n at every real step."""
    grad = torch.zeros_like(theta)
    n = int(mask.sum())
    for s, a, m in zip(obs.flatten().tolist(), actions.flatten().tolist(), mask.flatten().tolist()):
        if m:
            p = torch.softmax(theta[s], 0)
            grad[s] += (p - torch.nn.functional.one_hot(torch.tensor(a), theta.shape[1]).to(p)) / n
    return grad


@pytest.mark.points(2)
def test_bc_loss_gradient_is_the_exact_softmax_gradient():
    g = torch.Generator().manual_seed(3)
    policy = TabularPolicy(4, 3)
    policy.theta.data = torch.randn(4, 3, generator=g)
    obs = torch.randint(0, 4, (5, 6), generator=g)
    actions = torch.randint(0, 3, (5, 6), generator=g)
    mask = torch.arange(6)[None, :] < torch.tensor([6, 3, 1, 5, 2])[:, None]
    bc_loss(policy, TrajectoryBatch(obs=obs, actions=actions, mask=mask)).backward()
    torch.testing.assert_close(policy.theta.grad, exact_gradient(policy.theta.detach(), obs, actions, mask),
                               rtol=0, atol=1e-6)


@pytest.mark.points(2)
def test_bc_loss_ignores_what_sits_on_padding():
    policy = TabularPolicy(2, 2)
    policy.theta.data = torch.tensor([[3.0, -3.0], [0.0, 1.0]])
    mask = torch.tensor([[True, False, False]])
    a = TrajectoryBatch(obs=torch.tensor([[1, 0, 0]]), actions=torch.tensor([[1, 1, 1]]), mask=mask)
    b = TrajectoryBatch(obs=torch.tensor([[1, 1, 0]]), actions=torch.tensor([[1, 0, 0]]), mask=mask)
    expected = -torch.log_softmax(torch.tensor([0.0, 1.0]), 0)[1].item()
    assert bc_loss(policy, a).item() == pytest.approx(expected, abs=1e-6)
    assert bc_loss(policy, b).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.points(2)
def test_aggregate_keeps_old_data_first_and_drops_behaviour_fields():
    expert = TableExpert([2, 0, 1])
    old = TrajectoryBatch(obs=torch.tensor([[1, 1]]), actions=torch.tensor([[0, 0]]), mask=torch.tensor([[True, True]]))
    visited = TrajectoryBatch(obs=torch.tensor([[0, 2, 1], [2, 0, 0]]), actions=torch.tensor([[1, 1, 1], [0, 0, 0]]),
                              mask=torch.tensor([[True, True, True], [True, True, False]]),
                              rewards=torch.ones(2, 3), log_probs=torch.full((2, 3), -0.5))
    out = aggregate(old, visited, expert)
    assert out.batch_size == 3
    assert out.obs[0, :2].tolist() == [1, 1] and out.actions[0, :2].tolist() == [0, 0]
    assert out.actions[1].tolist() == [2, 1, 0] and out.actions[2, :2].tolist() == [1, 2]
    assert out.log_probs is None and out.rewards is None  # the behaviour policy's, not the expert's
    assert out.mask.tolist()[2] == [True, True, False]
