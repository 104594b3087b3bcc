"""The KL-penalised reward (minirl.algos.kl_penalty) against exact tabular answers (docs/equations.md §6)."""

import pytest
import torch

from minirl.algos.kl_penalty import KLPenalisedReward, kl_penalised_reward
from minirl.data import TrajectoryBatch
from minirl.policies import TabularPolicy

R = torch.tensor([1.0, 0.5, 0.0, -0.5], dtype=torch.float64)
PI_REF = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
BETA = 0.5


def every_action(policy: TabularPolicy) -> TrajectoryBatch:
    """One row per action of a one-state bandit, sampled (log_probs) by ``policy``."""
    actions = torch.arange(4)[:, None]
    batch = TrajectoryBatch(obs=torch.zeros(4, 1, dtype=torch.long), actions=actions, mask=torch.ones(4, 1))
    return batch.replace(log_probs=policy.log_prob(batch).detach())


def test_expected_return_is_the_kl_regularised_objective():
    """sum_a pi(a) [r(a) - beta log pi(a)/pi_ref(a)] = E_pi[r] - beta KL(pi || pi_ref), exactly."""
    pi = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    policy, reference = TabularPolicy.from_table(pi[None].float()), TabularPolicy.from_table(PI_REF[None].float())
    reward = KLPenalisedReward(lambda b: R[b.actions[:, 0]].float(), reference, BETA)
    r = reward(every_action(policy))  # (4, 1)
    exact = pi @ R - BETA * (pi * (pi / PI_REF).log()).sum()
    assert float(pi @ r[:, 0].double()) == pytest.approx(float(exact), abs=1e-6)
    assert reward.last_stats["reward/kl"] == pytest.approx(float((pi / PI_REF).log().mean()), abs=1e-6)


def test_the_return_is_constant_at_the_optimum():
    """At pi* = pi_ref exp(r / beta) / Z every action earns r(a) - beta log pi*(a)/pi_ref(a) = beta log Z."""
    log_z = torch.logsumexp(PI_REF.log() + R / BETA, 0)
    pi_star = (PI_REF.log() + R / BETA - log_z).exp()
    policy, reference = TabularPolicy.from_table(pi_star[None].float()), TabularPolicy.from_table(PI_REF[None].float())
    r = KLPenalisedReward(lambda b: R[b.actions[:, 0]].float(), reference, BETA)(every_action(policy))
    torch.testing.assert_close(r[:, 0].double(), torch.full((4,), BETA * float(log_z), dtype=torch.float64),
                               atol=1e-5, rtol=0)


def test_the_score_is_paid_at_the_last_real_step_and_padding_earns_nothing():
    log_probs = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, -9.0], [-0.25, -9.0, -9.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    rewards, kl = kl_penalised_reward(torch.tensor([3.0, -1.0]), log_probs, ref, mask, beta=2.0)
    torch.testing.assert_close(rewards, torch.tensor([[-1.0, 2.0 + 3.0, 0.0], [0.5 - 1.0, 0.0, 0.0]]))
    torch.testing.assert_close(kl, torch.tensor([0.5 - 1.0, -0.25]))


def test_bad_input_is_refused():
    reference = TabularPolicy(1, 4)
    with pytest.raises(ValueError, match="beta"):
        KLPenalisedReward(lambda b: R, reference, -1.0)
    with pytest.raises(ValueError, match="scorer"):
        KLPenalisedReward(3.0, reference, 0.5)
    batch = every_action(reference)
    with pytest.raises(ValueError, match="scorer: must return"):
        KLPenalisedReward(lambda b: torch.zeros(3), reference, 0.5)(batch)
    with pytest.raises(ValueError, match="log_probs"):
        KLPenalisedReward(lambda b: torch.zeros(4), reference, 0.5)(batch.replace(log_probs=None))
