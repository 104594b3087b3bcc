"""Direct Preference Optimisation (Rafailov et al. 2023; survey §4.1; docs/equations.md §6).

With the KL-regularised optimum pi*(tau) = pi_ref(tau) exp(R(tau)/beta) / Z, the reward is
R = beta log pi*/pi_ref + beta log Z, and the Bradley-Terry likelihood of a preference
tau+ > tau- no longer needs R (Z cancels in the difference):

    Delta  = [log pi(tau+) - log pi_ref(tau+)] - [log pi(tau-) - log pi_ref(tau-)]
    L      = -E[ p log sigma(beta Delta) + (1 - p) log sigma(-beta Delta) ]

p is the label's probability that tau+ is preferred (1 for hard labels; ``Preferences.strength``
when it holds the labeller's probability). Sequence log-probs are masked sums of the policy's
per-step log-probs, so the same code trains a softmax table on trajectories and a language model
on responses. At the optimum beta Delta = R(tau+) - R(tau-) for every pair the data covers, i.e.
pi = pi* on their support: the tests check this fixed point against soft value iteration with the
prior pi_ref (:func:`minirl.mdp.soft_value_iteration`).

beta log pi/pi_ref is DPO's *implicit reward*; its accuracy (how often the chosen one scores
higher) and margin are logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from minirl.algos.minibatch import minibatch_training, trainable_parameters
from minirl.algos.reward_model import bradley_terry_loss
from minirl.checks import check_minibatch_training, check_number
from minirl.data import Preferences, TrajectoryBatch
from minirl.policies import Policy, check_not_shared, check_same_actions

__all__ = ["dpo_loss", "sequence_log_prob", "DPOConfig", "train_dpo"]


def sequence_log_prob(policy: Policy, batch: TrajectoryBatch) -> Tensor:
    """log pi(tau) = sum_t log pi(a_t | s_t) over the real steps, (B,)."""
    return batch.masked_sum(policy.log_prob(batch))


def dpo_loss(logp_chosen: Tensor, logp_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float, label: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
    """The DPO loss of B pairs (mean), from sequence log-probs under the policy and the reference, all (B,).

    ``label``: probability that the chosen one is preferred (None = 1, hard labels).
    """
    # BEGIN SOLUTION
    reward_chosen = beta * (logp_chosen - ref_chosen)  # implicit rewards beta log pi / pi_ref
    reward_rejected = beta * (logp_rejected - ref_rejected)
    loss = bradley_terry_loss(reward_chosen, reward_rejected, label)  # docs/equations.md §6: BT on implicit rewards
    # END SOLUTION
    margin = reward_chosen - reward_rejected  # beta Delta
    stats = {"loss/dpo": loss.item(), "rewards/accuracy": (margin > 0).float().mean().item(),
             "rewards/margin": margin.mean().item(), "rewards/chosen": reward_chosen.mean().item(),
             "rewards/rejected": reward_rejected.mean().item()}
    return loss, stats


@dataclass(frozen=True)
class DPOConfig:
    """Hyperparameters of DPO."""

    beta: float = 0.1
    """KL strength: the optimum is pi_ref exp(R / beta) / Z."""
    n_updates: int = 500
    """Gradient steps."""
    batch_size: int | None = None
    """Pairs per step; None = all pairs every step."""
    lr: float = 1e-2
    """Adam learning rate."""
    use_strength: bool = False
    """Read ``Preferences.strength`` as the label probability p (else hard labels, p = 1)."""
    seed: int = 0
    """Seeds the minibatch sampler."""
    progress: bool = False

    def __post_init__(self) -> None:
        check_number(self.beta, "beta", 0.0, strict_minimum=True)
        check_minibatch_training(self)


def train_dpo(policy: Policy, reference: Policy, prefs: Preferences,
              config: DPOConfig = DPOConfig()) -> list[dict[str, float]]:
    """Fit ``policy`` (a torch module) to ``prefs`` by DPO against the frozen ``reference``, in place."""
    if policy is reference:
        raise ValueError("reference: must be a frozen copy, not the policy being trained")
    check_not_shared(policy, reference)  # a shared tensor would move with the policy
    check_same_actions(policy, reference)  # log pi / pi_ref of one token id must compare one token
    if config.use_strength and prefs.strength is None:
        raise ValueError("prefs: use_strength=True needs Preferences.strength (label probabilities)")
    # strengths in [0, 1] are guaranteed by Preferences itself
    params = trainable_parameters(policy, "policy")  # type: ignore[arg-type]
    with torch.no_grad():  # the reference never changes: score it once
        ref_chosen = sequence_log_prob(reference, prefs.chosen)
        ref_rejected = sequence_log_prob(reference, prefs.rejected)
    label = prefs.strength if config.use_strength else None

    def loss_fn(index: Tensor | None) -> tuple[Tensor, dict[str, float]]:
        index = torch.arange(len(prefs)) if index is None else index
        logp_chosen = sequence_log_prob(policy, prefs.chosen[index])
        device = logp_chosen.device  # the reference (and labels) may live elsewhere, e.g. an exact CPU table
        return dpo_loss(logp_chosen, sequence_log_prob(policy, prefs.rejected[index]), ref_chosen[index].to(device),
                        ref_rejected[index].to(device), config.beta, None if label is None else label[index].to(device))

    return minibatch_training(params, len(prefs), config, loss_fn, desc="DPO")
