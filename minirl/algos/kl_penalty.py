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
each combination induces is computed exactly by :func:`exact_kl_gradients` (every response enumerated),
and by :func:`exact_off_policy_kl_gradients` when the samples come from pi_old != pi (PPO after its first
step): a table can then say what the library does when configured that way.

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

__all__ = ["KLPenalisedReward", "kl_penalised_reward", "KLLoss", "kl_loss_terms", "exact_kl_gradients",
           "exact_off_policy_kl_gradients", "OFF_POLICY_PLACEMENTS"]


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


def kl_loss_terms(log_probs: Tensor, ref_log_probs: Tensor, old_log_probs: Tensor, mask: Tensor, estimator: str,
                  ratio: bool) -> Tensor:
    """w_t k(log pi_ref - log pi) per step, (B, T), 0 on padding, differentiable in ``log_probs``
    (docs/equations.md §11): w_t = 1, or with ``ratio`` the importance ratio pi/pi_old (value 1 on
    policy, gradient grad log pi). The quantity :class:`KLLoss` averages, and the lab measures."""
    k = kl_estimate(ref_log_probs.to(log_probs.dtype) - log_probs, estimator)  # §11
    if ratio:
        k = k * torch.exp(log_probs - old_log_probs.to(log_probs.dtype))
    return torch.where(mask.to(k.device), k, torch.zeros_like(k))


class KLLoss:
    """The KL estimator in the loss (the GRPO way): a :class:`~minirl.algos.ppo.PPO` regulariser.

    ``loss(batch, log_probs, old_log_probs) = coef * masked mean of`` :func:`kl_loss_terms` over the
    minibatch's real steps, differentiated through log pi. docs/equations.md §11 says which gradient
    each choice gives; ``exact_kl_gradients`` and ``exact_off_policy_kl_gradients`` measure it.

    Refused: k1 without the ratio. E_pi[grad log pi] = 0, so on policy it adds no gradient, only noise,
    and on pi_old's samples its gradient sum_s n_old(s) (pi_old - pi)(.|s) pushes pi away from pi_old
    whatever pi_ref is (the KL-estimator lab, docs/results/distillation.md). k1 belongs in the reward
    (``KLPenalisedReward``), or in the loss times the ratio.
    """

    def __init__(self, reference: Policy, coef: float = 0.1, estimator: str = "k3", ratio: bool = False):
        self.reference, self.coef = reference, check_number(coef, "coef", 0.0)
        self.estimator = check_choice(estimator, "estimator", KL_ESTIMATORS)
        if not isinstance(ratio, bool):
            raise ValueError(f"ratio: must be True or False, got {ratio!r}")
        if self.estimator == "k1" and not ratio:
            raise ValueError("estimator: k1 in the loss without ratio=True has no expected gradient on policy and "
                             "pushes pi away from pi_old off policy (docs/equations.md §11); use ratio=True, k2 or "
                             "k3, or put k1 in the reward (KLPenalisedReward)")
        self.ratio = ratio

    def terms(self, log_probs: Tensor, ref_log_probs: Tensor, old_log_probs: Tensor, mask: Tensor) -> Tensor:
        """w_t k_t per step, (B, T), 0 on padding (:func:`kl_loss_terms` with this loss's settings)."""
        return kl_loss_terms(log_probs, ref_log_probs, old_log_probs, mask, self.estimator, self.ratio)

    def __call__(self, batch: TrajectoryBatch, log_probs: Tensor, old_log_probs: Tensor) -> Tensor:
        with torch.no_grad():
            ref_log_probs = self.reference.log_prob(batch).to(log_probs.device)
        return self.coef * batch.masked_mean(self.terms(log_probs, ref_log_probs, old_log_probs, batch.mask))


def _summary(values: Tensor, weights: Tensor, g: Tensor, kl: float, exact_grad: Tensor) -> dict[str, Any]:
    """One row: E[K], bias, Var[K] of the per-sequence values (B,) under the weights (B,), and the expected
    gradient g against the exact one (cosine undefined for a zero gradient, which has no direction)."""
    value = float((weights * values).sum())
    return {"value": value, "bias": value - kl, "variance": float((weights * (values - value) ** 2).sum()), "grad": g,
            "cosine": float(torch.nn.functional.cosine_similarity(g, exact_grad, dim=0))
            if g.norm() > 1e-6 * exact_grad.norm() else math.nan,
            "rel_error": float((g - exact_grad).norm() / exact_grad.norm())}


def _gradient(params: list[Tensor]) -> Callable[[Tensor], Tensor]:
    def grad(objective: Tensor) -> Tensor:
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(objective, params, retain_graph=True)])
    return grad


def exact_kl_gradients(policy: Policy, reference: Policy, batch: TrajectoryBatch, prompt_weights: Tensor,
                       params: list[Tensor]) -> dict[str, Any]:
    """Every KL estimator in every placement, in exact expectation (docs/equations.md §11).

    ``batch`` must hold *every* response with pi > 0 of each prompt (an enumeration), with
    ``prompt_weights`` (B,) = rho0(x) of its prompt, so that d(tau) = rho0(x) d^pi(y|x) sums to 1. For each
    estimator k and placement -- "reward" (the penalty of :func:`kl_penalised_reward` with REINFORCE
    advantages and PPO's clipped surrogate at ratio 1), "loss" and "loss_ratio" (:class:`KLLoss`) -- the
    expected value and variance of K(tau) = sum_t k_t and the expected gradient (w.r.t. ``params``,
    flattened), against the exact KL(d^pi || d^ref) and its autograd gradient. Samples from pi_old != pi:
    :func:`exact_off_policy_kl_gradients`.
    """
    logp = policy.log_prob(batch).double()  # (B, T), with its graph
    with torch.no_grad():
        ref = reference.log_prob(batch).double()
    mask = batch.mask
    log_d = batch.masked_sum(logp)  # (B,)
    d = prompt_weights.double() * log_d.exp()  # (B,), depends on theta
    if abs(float(d.detach().sum()) - 1.0) > 1e-6:
        raise ValueError(f"batch: must enumerate every response (d sums to {float(d.detach().sum()):.6f}, not 1)")
    grad = _gradient(params)
    exact_kl = (d * (log_d - batch.masked_sum(ref))).sum()  # (§2) sequence KL
    exact_grad = grad(exact_kl)
    w = d.detach()
    out: dict[str, Any] = {"kl": float(exact_kl.detach()), "grad": exact_grad}
    for est in KL_ESTIMATORS:
        K = batch.masked_sum(kl_loss_terms(logp, ref, logp.detach(), mask, est, False))  # (B,)
        rewards, _ = kl_penalised_reward(torch.zeros(batch.batch_size, dtype=torch.float64), logp.detach(), ref,
                                         mask, 1.0, est)
        adv = sequence_advantages(rewards, mask, batch.batch_size, "reinforce")
        surrogate = batch.masked_sum(clipped_surrogate(torch.exp(logp - logp.detach()), adv, 0.2))  # (B,)
        with_ratio = batch.masked_sum(kl_loss_terms(logp, ref, logp.detach(), mask, est, True))
        for placement, objective in (("reward", surrogate), ("loss", K), ("loss_ratio", with_ratio)):
            out[f"{est}/{placement}"] = _summary(K.detach(), w, grad((w * objective).sum()), out["kl"], exact_grad)
    return out


OFF_POLICY_PLACEMENTS = ("reward", "reward_unclipped", "loss", "loss_ratio", "token_reward_fresh",
                         "sequence_reward_stale", "sequence_reward", "sequence_loss", "sequence_loss_ratio")


def exact_off_policy_kl_gradients(policy: Policy, reference: Policy, batch: TrajectoryBatch, prompt_weights: Tensor,
                                  params: list[Tensor], clip_eps: float = 0.2) -> dict[str, Any]:
    """Every KL estimator and placement at the current pi on samples of another policy pi_old, exactly.

    What PPO does after its first minibatch step: the batch was sampled by pi_old, whose log-probs it carries
    (``batch.log_probs``: PPO's old log-probs, and what :class:`KLPenalisedReward` computed the penalty from
    when the batch was collected), while the gradient is taken at the current parameters. ``batch`` must
    enumerate every response with pi > 0 or pi_old > 0 and carry ``log_probs`` = log pi_old(a_t|s_t) (B, T);
    ``prompt_weights`` (B,) = rho0(x), so that d^old(tau) = rho0(x) exp(sum_t log_probs) and d^pi(tau) both
    sum to 1. Expectations are sums over the enumeration weighted by d^old; with rho_t = pi/pi_old per token
    (PPO's ratio) and the sequence weight W(tau) = d^pi(tau) / d^old(tau), each placement's expected gradient is:

        reward              E_old[ sum_t grad -min(rho_t A, clip(rho_t, 1 - eps, 1 + eps) A) ]   the library:
                            A = -(K_old(tau) - b), K_old = sum_t k(log pi_ref - log pi_old) from
                            :func:`kl_penalised_reward` on the sampling log-probs (stale at pi), b = E_old[-K_old]
        reward_unclipped    the same with eps = inf: E_old[ sum_t rho_t grad log pi_t (K_old - b) ]
        loss, loss_ratio    E_old[ grad sum_t w_t k_t ] of :class:`KLLoss` at pi, w_t = 1 or rho_t
        token_reward_fresh  reward_unclipped with the penalty recomputed at pi (isolates the per-token ratio)
        sequence_reward_stale  E_old[ W grad log d^pi (K_old - b) ] (isolates the stale penalty)
        sequence_reward     E_old[ W grad log d^pi (K - b) ], K at pi: = E_pi[...], the on-policy "reward"
                            row; for k1 exactly grad KL(d^pi || d^ref) (the reference)
        sequence_loss(_ratio)  E_old[ W grad sum_t w_t k_t ] = the on-policy "loss" ("loss_ratio") row

    Each row has the expected value, bias (against KL(d^pi || d^ref)) and variance under d^old of the
    per-sequence quantity averaged (K_old, K at pi, sum_t rho_t k_t, or W K for the sequence-weighted rows),
    and the expected gradient w.r.t. ``params`` (flattened) with its cosine and relative error to the exact
    gradient. Design decisions: the baseline b is the d^old-mean of the return (the large-batch limit of
    REINFORCE's batch mean; on the unclipped rows any constant b adds 0 in expectation), advantages are
    not standardised (a positive scale: the cosine is unchanged), the penalty's coefficient is 1 and there
    is no score. Also returned: "kl_old_to_policy" = KL(d^old || d^pi) and "clip_fraction", the d^old share
    of tokens with |rho_t - 1| > ``clip_eps`` (PPO's statistic). With log_probs = log pi every row equals its
    on-policy counterpart of :func:`exact_kl_gradients`.
    """
    clip_eps = check_number(clip_eps, "clip_eps", 0.0, strict_minimum=True)
    if batch.log_probs is None:
        raise ValueError("batch: needs log_probs, the sampling policy's log pi_old (as PPO's batches carry)")
    mask = batch.mask
    logp = policy.log_prob(batch).double()  # (B, T), with its graph
    with torch.no_grad():
        ref = reference.log_prob(batch).double()
    old = torch.where(mask, batch.log_probs.double(), torch.zeros((), dtype=torch.float64))  # (B, T)
    log_d, log_d_old = batch.masked_sum(logp), batch.masked_sum(old)  # (B,)
    rho0 = prompt_weights.double()
    d, w = rho0 * log_d.exp(), rho0 * log_d_old.exp()  # (B,); d depends on theta, w = d^old is data
    for name, total in (("d^pi", float(d.detach().sum())), ("d^old", float(w.sum()))):
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"batch: must enumerate every response of pi and pi_old ({name} sums to {total:.6f}, "
                             f"not 1)")
    grad = _gradient(params)
    exact_kl = (d * (log_d - batch.masked_sum(ref))).sum()  # (§2) sequence KL at the current pi
    exact_grad = grad(exact_kl)
    kl = float(exact_kl.detach())
    seq_ratio = torch.exp(log_d - log_d_old)  # W(tau), (B,), differentiable
    W = seq_ratio.detach()
    token_ratio = torch.exp(torch.where(mask, logp - old, torch.zeros_like(logp)))  # rho_t, as ppo_loss forms it
    real = mask.to(torch.float64)
    clipped = (((token_ratio.detach() - 1).abs() > clip_eps) & mask).to(torch.float64)
    out: dict[str, Any] = {
        "kl": kl, "grad": exact_grad, "kl_old_to_policy": float((w * (log_d_old - log_d.detach())).sum()),
        "clip_fraction": float((w * clipped.sum(1)).sum() / (w * real.sum(1)).sum())}
    zero = torch.zeros(batch.batch_size, dtype=torch.float64)

    def advantage(rewards: Tensor, weights: Tensor) -> Tensor:
        """A_i = R_i - E[R], (B,); R_i the row's return, E under ``weights``."""
        ret = batch.masked_sum(rewards)
        return ret - (weights * ret).sum()

    def per_step(a: Tensor) -> Tensor:  # every real step of row i gets A_i, (B, T)
        return a[:, None] * real

    for est in KL_ESTIMATORS:
        stale_rewards, _ = kl_penalised_reward(zero, old, ref, mask, 1.0, est)  # what PPO's reward_fn computed
        fresh_rewards, _ = kl_penalised_reward(zero, logp.detach(), ref, mask, 1.0, est)  # recomputed at pi
        K_old, K = -batch.masked_sum(stale_rewards), -batch.masked_sum(fresh_rewards)  # (B,)
        a_stale, a_fresh_old = advantage(stale_rewards, w), advantage(fresh_rewards, w)
        a_fresh = advantage(fresh_rewards, w * W)  # baseline E_pi[R]
        loss_terms = batch.masked_sum(kl_loss_terms(logp, ref, old, mask, est, False))
        ratio_terms = batch.masked_sum(kl_loss_terms(logp, ref, old, mask, est, True))
        on_ratio_terms = batch.masked_sum(  # the ratio to pi itself: value 1, gradient grad log pi
            kl_loss_terms(logp, ref, logp.detach(), mask, est, True))
        rows = {  # placement: (per-sequence objective under d^old, per-sequence value whose mean is E[K])
            "reward": (batch.masked_sum(clipped_surrogate(token_ratio, per_step(a_stale), clip_eps)), K_old),
            "reward_unclipped": (batch.masked_sum(clipped_surrogate(token_ratio, per_step(a_stale), math.inf)),
                                 K_old),
            "loss": (loss_terms, K),
            "loss_ratio": (ratio_terms, ratio_terms.detach()),
            "token_reward_fresh": (batch.masked_sum(clipped_surrogate(token_ratio, per_step(a_fresh_old), math.inf)),
                                   K),
            "sequence_reward_stale": (clipped_surrogate(seq_ratio, a_stale, math.inf), W * K_old),
            "sequence_reward": (clipped_surrogate(seq_ratio, a_fresh, math.inf), W * K),
            "sequence_loss": (W * loss_terms, W * K),
            "sequence_loss_ratio": (W * on_ratio_terms, W * K)}
        for placement, (objective, values) in rows.items():
            out[f"{est}/{placement}"] = _summary(values.detach(), w, grad((w * objective).sum()), kl, exact_grad)
    return out
