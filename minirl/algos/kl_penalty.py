"""The KL-penalised sequence reward of RLHF, as a per-step reward PPO can take (docs/equations.md §6).

For a scorer r (a reward model, a verifier, a gold reward) of whole trajectories and a frozen
reference pi_ref, the KL-regularised objective

    max_pi  E_{tau ~ pi}[ r(tau) ] - beta KL(pi || pi_ref)      optimum pi* = pi_ref exp(r / beta) / Z

is written as an MDP reward:

    r_t = -beta (log pi_old(a_t|s_t) - log pi_ref(a_t|s_t))     at every real step
        + r(tau)                                              added at the last real step

Summed over a trajectory, sum_t r_t = r(tau) - beta log pi_old(tau) / pi_ref(tau), whose
expectation under pi_old is the objective: the per-step penalty is an unbiased, per-step-credited
estimate of the KL term. Nothing here knows about tokens: any batch with the sampling policy's
log_probs and any policy with ``log_prob(batch)`` will do (a softmax table in the tests, a
language model in ``llmtrack.pipelines.rlhf``).

Shapes: ``scorer(batch) -> (B,)``; the reward is (B, T), 0 on padding.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from minirl.checks import check_number
from minirl.data import TrajectoryBatch, last_step
from minirl.policies import Policy, check_same_actions

__all__ = ["KLPenalisedReward", "kl_penalised_reward"]


def kl_penalised_reward(score: Tensor, log_probs: Tensor, ref_log_probs: Tensor, mask: Tensor,
                        beta: float) -> tuple[Tensor, Tensor]:
    """Per-step rewards (B, T) and the sequence log-ratios (B,) sum_t log pi_old/pi_ref (docs/equations.md §6).

    Args:
        score: r(tau), (B,). log_probs, ref_log_probs: log pi_old(a_t|s_t), log pi_ref(a_t|s_t), (B, T).
        mask: (B, T) real steps. beta: the KL coefficient.
    """
    # BEGIN SOLUTION
    log_ratio = (log_probs - ref_log_probs) * mask  # (B, T), 0 on padding
    rewards = -beta * log_ratio  # docs/equations.md §6: the per-token KL penalty
    rewards[last_step(mask)] += score[mask.long().sum(1) > 0]  # r(tau) at the last real step
    # END SOLUTION
    return rewards, log_ratio.sum(1)


class KLPenalisedReward:
    """PPO's ``reward_fn``: r_t = -beta (log pi_old - log pi_ref)(a_t|s_t), plus r(tau) at the last step.

    Args:
        scorer: ``score(batch) -> (B,)`` -- a callable, or an object with a ``score`` method (a
            reward model).
        reference: the frozen pi_ref (any :class:`~minirl.policies.Policy`).
        beta: the KL coefficient (>= 0).

    ``last_stats`` keeps the batch means of the score, of the sequence KL estimate
    sum_t log pi_old/pi_ref (its mean estimates KL(pi_old || pi_ref)) and of the total return.
    """

    def __init__(self, scorer: Callable[[TrajectoryBatch], Tensor] | Any, reference: Policy, beta: float):
        beta = check_number(beta, "beta", 0.0)
        check_same_actions(reference, scorer, "reference", "scorer")
        score = getattr(scorer, "score", scorer)
        if not callable(score):
            raise ValueError(f"scorer: must be a callable batch -> (B,) or have a score method, got "
                             f"{type(scorer).__name__}")
        self.scorer, self.reference, self.beta = score, reference, float(beta)
        self.last_stats: dict[str, float] = {}

    @torch.no_grad()
    def __call__(self, batch: TrajectoryBatch) -> Tensor:
        if batch.log_probs is None:
            raise ValueError("batch: needs the sampling policy's log_probs")
        ref_log_probs = self.reference.log_prob(batch).float().cpu()  # (B, T)
        score = torch.as_tensor(self.scorer(batch)).float().cpu()  # (B,)
        if score.shape != (batch.batch_size,):
            raise ValueError(f"scorer: must return (B,) = ({batch.batch_size},) scores, got {tuple(score.shape)}")
        rewards, kl = kl_penalised_reward(score, batch.log_probs.float(), ref_log_probs, batch.mask, self.beta)
        self.last_stats = {"reward/score": score.mean().item(), "reward/kl": kl.mean().item(),
                           "reward/return": (score - self.beta * kl).mean().item()}
        return rewards
