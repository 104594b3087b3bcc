"""Policies against hand-computed probabilities; the protocols they satisfy."""

import math

import numpy as np
import pytest
import torch

from minirl.data import TrajectoryBatch
from minirl.experts import CartPoleExpert, optimal_tabular_expert
from minirl.envs import tightrope
from minirl.policies import Expert, MixturePolicy, MLPPolicy, Policy, SlipPolicy, TabularPolicy


def batch_of(obs, actions, mask=None):
    obs, actions = torch.as_tensor(obs), torch.as_tensor(actions)
    mask = torch.ones_like(actions, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    return TrajectoryBatch(obs=obs, actions=actions, mask=mask)


def test_tabular_log_prob_matches_softmax_and_masks_padding():
    pi = TabularPolicy(3, 2)
    pi.theta.data = torch.tensor([[0.0, math.log(3.0)], [2.0, 0.0], [0.0, 0.0]])
    b = batch_of([[0, 1, 2]], [[1, 0, 1]], [[True, True, False]])
    expected = [math.log(3 / 4), 2 - math.log(math.exp(2) + 1), 0.0]
    assert pi.log_prob(b)[0].tolist() == pytest.approx(expected, abs=1e-6)
    # the fast path equals the generic gather path of the base class
    generic = super(TabularPolicy, pi).log_prob(b)
    assert torch.allclose(pi.log_prob(b), generic)
    h = pi.entropy(b)[0]
    assert h[0].item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-6)
    assert h[2].item() == 0.0


def test_bc_gradient_of_table_is_pi_minus_onehot():
    """d/dtheta of -mean log pi(a|s) is (pi(.|s) - e_a) / N per visit: the exact softmax gradient."""
    torch.manual_seed(0)
    pi = TabularPolicy(4, 3, init_scale=1.0, generator=torch.Generator().manual_seed(1))
    obs = torch.tensor([[0, 1, 1, 3]])
    actions = torch.tensor([[2, 0, 1, 1]])
    loss = -pi.log_prob(batch_of(obs, actions)).mean()
    loss.backward()
    probs = torch.softmax(pi.theta.detach(), -1)
    expected = torch.zeros(4, 3)
    for s, a in zip(obs[0].tolist(), actions[0].tolist()):
        expected[s] += (probs[s] - torch.nn.functional.one_hot(torch.tensor(a), 3)) / 4
    assert torch.allclose(pi.theta.grad, expected, atol=1e-6)


def test_out_of_range_actions_and_states_are_refused():
    pi = TabularPolicy(3, 2)
    with pytest.raises(ValueError, match="actions"):
        pi.log_prob(batch_of([[0]], [[2]]))
    with pytest.raises(ValueError, match="obs"):
        pi.log_prob(batch_of([[3]], [[0]]))
    with pytest.raises(ValueError, match="obs"):
        MLPPolicy(4, 2).sample(torch.zeros(5, 3))


def test_slip_policy_has_exact_error_epsilon():
    expert = TabularPolicy.from_table(np.eye(4)[[1, 3]])  # deterministic: state 0 -> 1, state 1 -> 3
    slip = SlipPolicy(expert, 0.1)
    p = slip.probs(torch.tensor([0, 1]))
    assert p[0].tolist() == pytest.approx([0.1 / 3, 0.9, 0.1 / 3, 0.1 / 3])
    assert p[1, 3].item() == pytest.approx(0.9)
    # log_prob via the per-action formula equals the full distribution's entries
    b = batch_of([[0, 0, 1]], [[0, 1, 2]])
    assert torch.allclose(slip.log_prob(b).exp()[0], torch.stack([p[0, 0], p[0, 1], p[1, 2]]))
    uniform = SlipPolicy(TabularPolicy(1, 4), 0.3)  # an untrained state stays uniform
    assert torch.allclose(uniform.probs(torch.tensor([0])), torch.full((1, 4), 0.25))
    with pytest.raises(ValueError, match="epsilon"):
        SlipPolicy(expert, 1.5)


def test_mixture_acts_as_expert_with_probability_beta():
    expert = TabularPolicy.from_table(np.eye(2)[[0]])  # always action 0
    learner = TabularPolicy.from_table(np.eye(2)[[1]])  # always action 1
    mix = MixturePolicy(expert, learner, beta=0.3)
    actions, _ = mix.sample(torch.zeros(20000, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    frac_expert = (actions == 0).float().mean().item()
    assert abs(frac_expert - 0.3) < 4 * math.sqrt(0.3 * 0.7 / 20000)
    with pytest.raises(ValueError, match="beta"):
        MixturePolicy(expert, learner, beta=-0.1)


def test_protocols_and_experts():
    assert isinstance(TabularPolicy(2, 2), Policy) and isinstance(MLPPolicy(3, 2), Policy)
    expert = optimal_tabular_expert(tightrope())
    assert isinstance(expert, Expert) and isinstance(CartPoleExpert(), Expert)
    # the tabular expert's label is the optimal action; its sample is deterministic
    b = batch_of(torch.arange(14)[None], torch.zeros(1, 14, dtype=torch.long))
    labels = expert.label(b)
    actions, logp = expert.sample(torch.arange(14), generator=torch.Generator().manual_seed(0))
    assert torch.equal(labels[0], actions) and torch.all(logp == 0)


def test_mlp_policy_is_seeded_and_samples_reproducibly():
    a, b = MLPPolicy(4, 2, seed=3), MLPPolicy(4, 2, seed=3)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    obs = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    x = a.sample(obs, generator=torch.Generator().manual_seed(5))
    y = b.sample(obs, generator=torch.Generator().manual_seed(5))
    assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])
    assert torch.allclose(x[1], a.log_probs_all(obs).gather(-1, x[0][:, None])[:, 0])
