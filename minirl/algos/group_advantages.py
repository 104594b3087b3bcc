"""Monte-Carlo advantage estimators for sequence-level rewards: REINFORCE, RLOO, GRPO (survey §4.4; docs/equations.md §6).

With one scalar reward per sampled response (a reward model's score, a verifier's 0/1) and G
responses per prompt, the three estimators differ only in the baseline subtracted from r_i:

    reinforce   A_i = r_i - mean over the whole batch                    (a constant baseline)
    rloo        A_i = r_i - mean_{j != i} r_j  = G / (G - 1) (r_i - mean_group)   (leave one out: unbiased)
    grpo        A_i = (r_i - mean_group) / (std_group + eps)             (group-normalised)

They are advantage estimators for the same clipped update as PPO's GAE (every token of response i
gets A_i), not separate trainers. ``scores`` is (P, G): P prompts, G responses each.

With a reward at every step (a per-token distillation reward, say) the Monte-Carlo estimator that
keeps the per-step structure is the reward-to-go, :func:`reward_to_go`: step t is credited only with
the rewards from t on, G_t = sum_{t' >= t} gamma^(t' - t) r_t' (earlier rewards add nothing to the
expected gradient of log pi(a_t | s_t), only variance). It is GAE with V = 0 and lambda = 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

from minirl.checks import check_int

__all__ = ["ESTIMATORS", "group_advantages", "sequence_advantages", "reward_to_go"]

ESTIMATORS = ("reinforce", "rloo", "grpo")


def group_advantages(scores: Tensor, estimator: str, eps: float = 1e-6) -> Tensor:
    """Advantages (P, G) of G scored responses for each of P prompts."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: unknown estimator {estimator!r}; valid: {list(ESTIMATORS)}")
    if scores.ndim != 2:
        raise ValueError(f"scores: must have shape (P, G), got {tuple(scores.shape)}")
    G = scores.shape[1]
    if estimator != "reinforce" and G < 2:
        raise ValueError(f"scores: {estimator} needs G >= 2 responses per prompt, got {G}")
    # BEGIN SOLUTION
    if estimator == "reinforce":
        return scores - scores.mean()
    group_mean = scores.mean(dim=1, keepdim=True)  # (P, 1)
    if estimator == "rloo":
        return (scores - group_mean) * G / (G - 1)  # r_i minus the mean of the other G - 1
    return (scores - group_mean) / (scores.std(dim=1, keepdim=True) + eps)  # docs/equations.md §6
    # END SOLUTION


def sequence_advantages(rewards: Tensor, mask: Tensor, group_size: int, estimator: str) -> Tensor:
    """Monte-Carlo advantages for whole sequences: A_t = A_i for every step t of row i, (B, T).

    The score of row i is its undiscounted return sum_t r_t (a reward model's score at the last
    token plus any per-token KL penalty); rows come in consecutive groups of ``group_size``
    responses to one prompt, and ``estimator`` ("reinforce", "rloo", "grpo") turns the (P, G)
    scores into advantages (docs/equations.md §6, REINFORCE / RLOO / GRPO line).
    """
    B = rewards.shape[0]
    group_size = check_int(group_size, "group_size", 1)
    if B % group_size:
        raise ValueError(f"group_size: {B} rows do not split into groups of {group_size}")
    # summed in float64: GRPO divides by the group's std, which would blow float32 rounding up into
    # advantages of ~0.1 when a group's returns are equal (e.g. at the optimum)
    scores = (rewards.double() * mask).sum(1).reshape(B // group_size, group_size)
    per_row = group_advantages(scores, estimator).reshape(B, 1).to(rewards.dtype)
    return per_row * mask.to(rewards.dtype)


def reward_to_go(rewards: Tensor, episode_end: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """G_t = r_t + gamma (1 - end_t) G_{t+1}, (B, T), 0 on padding: the discounted rewards from step t to its
    episode's end (module docstring). gamma = 1 keeps the gradient of the summed reward exact; gamma = 0
    gives each step its own reward alone."""
    m = mask.to(rewards.dtype)
    not_end = 1.0 - episode_end.to(rewards.dtype)
    out = torch.zeros_like(rewards)
    following = torch.zeros_like(rewards[:, 0])  # G_{t+1}, (B,)
    for t in reversed(range(rewards.shape[1])):
        following = (rewards[:, t] + gamma * not_end[:, t] * following) * m[:, t]
        out[:, t] = following
    return out
