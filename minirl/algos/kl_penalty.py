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

The per-token penalty may use any of the KL estimators k1, k2, k3 (``estimator``; docs/equations.md §11;
k1 is the line above). The other placement, the GRPO way, puts the estimator in the *loss* and
differentiates it: :class:`KLLoss`, a regulariser for :class:`minirl.algos.ppo.PPO`. Which gradient
each combination induces is computed exactly by :func:`exact_kl_gradients` (every response enumerated):
a table can then say what the library does when configured that way.

Shapes: ``scorer(batch) -> (B,)``; the reward is (B, T), 0 on padding.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from minirl.algos.group_advantages import sequence_advantages
from minirl.algos.ppo import clipped_surrogate
from minirl.checks import check_choice, check_number
from minirl.data import TrajectoryBatch, last_step
from minirl.estimators import KL_ESTIMATORS, kl_estimate
from minirl.policies import Policy, check_same_actions

__all__ = ["KLPenalisedReward", "kl_penalised_reward", "KLLoss", "exact_kl_gradients"]


def kl_penalised_reward(score: Tensor, log_probs: Tensor, ref_log_probs: Tensor, mask: Tensor,
                        beta: float, estimator: str = "k1") -> tuple[Tensor, Tensor]:
    """Per-step rewards (B, T) and the sequence log-ratios (B,) sum_t log pi_old/pi_ref (docs/equations.md §6).

    Args:
        score: r(tau), (B,). log_probs, ref_log_probs: log pi_old(a_t|s_t), log pi_ref(a_t|s_t), (B, T).
        mask: (B, T) real steps. beta: the KL coefficient.
        estimator: the per-token penalty, "k1" (log pi_old/pi_ref, the line above), "k2" or "k3" (§11).
    """
    # BEGIN SOLUTION
    log_ratio = (log_probs - ref_log_probs) * mask  # (B, T), 0 on padding
    rewards = -beta * log_ratio  # docs/equations.md §6: the per-token KL penalty
    rewards[last_step(mask)] += score[mask.long().sum(1) > 0]  # r(tau) at the last real step
    # END SOLUTION
    if estimator != "k1":  # another estimator replaces the k1 penalty (docs/equations.md §11)
        k = kl_estimate(ref_log_probs - log_probs, estimator) * mask
        rewards = rewards - beta * (k - log_ratio)
    return rewards, log_ratio.sum(1)


class KLPenalisedReward:
    """PPO's ``reward_fn``: r_t = -beta (log pi_old - log pi_ref)(a_t|s_t), plus r(tau) at the last step.

    Args:
        scorer: ``score(batch) -> (B,)`` -- a callable, or an object with a ``score`` method (a
            reward model).
        reference: the frozen pi_ref (any :class:`~minirl.policies.Policy`).
        beta: the KL coefficient (>= 0).
        estimator: the per-token KL estimator in the reward, "k1" (default), "k2" or "k3" (§11).

    ``last_stats`` keeps the batch means of the score, of the sequence KL estimate
    sum_t log pi_old/pi_ref (its mean estimates KL(pi_old || pi_ref)) and of the total return.
    """

    def __init__(self, scorer: Callable[[TrajectoryBatch], Tensor] | Any, reference: Policy, beta: float,
                 estimator: str = "k1"):
        beta = check_number(beta, "beta", 0.0)
        self.estimator = check_choice(estimator, "estimator", KL_ESTIMATORS)
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
        rewards, kl = kl_penalised_reward(score, batch.log_probs.float(), ref_log_probs, batch.mask, self.beta,
                                          self.estimator)
        self.last_stats = {"reward/score": score.mean().item(), "reward/kl": kl.mean().item(),
                           "reward/return": (score - self.beta * kl).mean().item()}
        return rewards


class KLLoss:
    """The KL estimator in the loss (the GRPO way): a :class:`~minirl.algos.ppo.PPO` regulariser.

    ``loss(batch, log_probs, old_log_probs) = coef * masked mean of w_t k(log pi_ref - log pi)`` over the
    minibatch's real steps, differentiated through log pi; w_t = 1, or with ``ratio=True`` the importance
    ratio pi/pi_old (value 1 on policy, gradient grad log pi). docs/equations.md §11 says which gradient
    each choice gives; ``exact_kl_gradients`` measures it.
    """

    def __init__(self, reference: Policy, coef: float = 0.1, estimator: str = "k3", ratio: bool = False):
        self.reference, self.coef = reference, check_number(coef, "coef", 0.0)
        self.estimator = check_choice(estimator, "estimator", KL_ESTIMATORS)
        if not isinstance(ratio, bool):
            raise ValueError(f"ratio: must be True or False, got {ratio!r}")
        self.ratio = ratio

    def terms(self, log_probs: Tensor, ref_log_probs: Tensor, old_log_probs: Tensor, mask: Tensor) -> Tensor:
        """w_t k_t per step, (B, T), 0 on padding; differentiable in ``log_probs``."""
        k = kl_estimate(ref_log_probs.to(log_probs.dtype) - log_probs, self.estimator)  # §11
        if self.ratio:
            k = k * torch.exp(log_probs - old_log_probs.to(log_probs.dtype))
        return torch.where(mask.to(k.device), k, torch.zeros_like(k))

    def __call__(self, batch: TrajectoryBatch, log_probs: Tensor, old_log_probs: Tensor) -> Tensor:
        with torch.no_grad():
            ref_log_probs = self.reference.log_prob(batch).to(log_probs.device)
        return self.coef * batch.masked_mean(self.terms(log_probs, ref_log_probs, old_log_probs, batch.mask))


def exact_kl_gradients(policy: Policy, reference: Policy, batch: TrajectoryBatch, prompt_weights: Tensor,
                       params: list[Tensor]) -> dict[str, Any]:
    """Every KL estimator in every placement, in exact expectation (docs/equations.md §11).

    ``batch`` must hold *every* response with pi > 0 of each prompt (an enumeration), with
    ``prompt_weights`` (B,) = rho0(x) of its prompt, so that d(tau) = rho0(x) d^pi(y|x) sums to 1. For each
    estimator k and placement -- "reward" (the penalty of :func:`kl_penalised_reward` with REINFORCE
    advantages and PPO's clipped surrogate at ratio 1), "loss" and "loss_ratio" (:class:`KLLoss`) -- the
    expected value and variance of K(tau) = sum_t k_t and the expected gradient (w.r.t. ``params``,
    flattened), against the exact KL(d^pi || d^ref) and its autograd gradient.
    """
    logp = policy.log_prob(batch).double()  # (B, T), with its graph
    with torch.no_grad():
        ref = reference.log_prob(batch).double()
    mask = batch.mask
    log_d = batch.masked_sum(logp)  # (B,)
    d = prompt_weights.double() * log_d.exp()  # (B,), depends on theta
    if abs(float(d.detach().sum()) - 1.0) > 1e-6:
        raise ValueError(f"batch: must enumerate every response (d sums to {float(d.detach().sum()):.6f}, not 1)")

    def grad(objective: Tensor) -> Tensor:
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(objective, params, retain_graph=True)])

    exact_kl = (d * (log_d - batch.masked_sum(ref))).sum()  # (§2) sequence KL
    exact_grad = grad(exact_kl)
    w = d.detach()
    out: dict[str, Any] = {"kl": float(exact_kl.detach()), "grad": exact_grad}
    for est in KL_ESTIMATORS:
        K = batch.masked_sum(KLLoss(reference, 1.0, est).terms(logp, ref, logp.detach(), mask))  # (B,)
        value = float((w * K.detach()).sum())
        rewards, _ = kl_penalised_reward(torch.zeros(batch.batch_size, dtype=torch.float64), logp.detach(), ref,
                                         mask, 1.0, est)
        adv = sequence_advantages(rewards, mask, batch.batch_size, "reinforce")
        surrogate = batch.masked_sum(clipped_surrogate(torch.exp(logp - logp.detach()), adv, 0.2))  # (B,)
        with_ratio = batch.masked_sum(KLLoss(reference, 1.0, est, ratio=True).terms(logp, ref, logp.detach(), mask))
        for placement, objective in (("reward", surrogate), ("loss", K), ("loss_ratio", with_ratio)):
            g = grad((w * objective).sum())
            out[f"{est}/{placement}"] = {
                "value": value, "bias": value - out["kl"],
                "variance": float((w * (K.detach() - value) ** 2).sum()), "grad": g,
                "cosine": float(torch.nn.functional.cosine_similarity(g, exact_grad, dim=0))
                if g.norm() > 1e-6 * exact_grad.norm() else math.nan,  # a zero gradient has no direction
                "rel_error": float((g - exact_grad).norm() / exact_grad.norm())}
    return out
