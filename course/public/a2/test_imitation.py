"""Public tests of a2 (imitation): the behaviour-cloning loss and DAgger's aggregation step.

Oracles: the negative log-likelihood summed by hand over the real steps of a small batch (log-softmax of
a known table); DAgger's aggregation checked field by field against an expert given as a table.
"""

import math

import pytest
import torch

from minirl.algos import aggregate, bc_loss
from minirl.data import TrajectoryBatch
from minirl.policies import TabularPolicy


class TableExpert:
    """An expert that labels state s with action best[s]."""

    def __init__(self, best):
        self.best = torch.as_tensor(best)

    def label(self, batch: TrajectoryBatch) -> torch.Tensor:
        return self.best[batch.obs]


def nll_by_hand(theta: torch.Tensor, obs, actions, mask) -> float:
    total, count = 0.0, 0
    for row in range(len(obs)):
        for t in range(len(obs[row])):
            if mask[row][t]:
                logits = theta[obs[row][t]].tolist()
                log_z = math.log(sum(math.exp(x) for x in logits))
                total -= logits[actions[row][t]] - log_z
                count += 1
    return total / count


@pytest.mark.points(2)
def test_bc_loss_is_the_mean_negative_log_likelihood_of_real_steps():
    policy = TabularPolicy(3, 2)
    policy.theta.data = torch.tensor([[0.5, -1.0], [2.0, 0.0], [0.0, 0.3]])
    obs = [[0, 1, 2, 2], [2, 1, 0, 0]]
    actions = [[1, 0, 1, 0], [0, 1, 1, 1]]
    mask = [[True, True, True, False], [True, True, False, False]]
    batch = TrajectoryBatch(obs=torch.tensor(obs), actions=torch.tensor(actions), mask=torch.tensor(mask))
    expected = nll_by_hand(policy.theta.detach(), obs, actions, mask)
    assert bc_loss(policy, batch).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.points(2)
def test_aggregate_labels_the_visited_states_with_the_expert_and_appends():
    expert = TableExpert([1, 0, 1])
    visited = TrajectoryBatch(obs=torch.tensor([[0, 1, 2]]), actions=torch.tensor([[0, 0, 0]]),
                              mask=torch.tensor([[True, True, True]]))
    first = aggregate(None, visited, expert)
    assert first.actions.tolist() == [[1, 0, 1]]
    assert first.obs.tolist() == [[0, 1, 2]]
    more = TrajectoryBatch(obs=torch.tensor([[2, 2]]), actions=torch.tensor([[0, 0]]), mask=torch.tensor([[True, False]]))
    both = aggregate(first, more, expert)
    assert both.batch_size == 2
    assert both.actions[0].tolist() == [1, 0, 1] and both.actions[1, 0].item() == 1
