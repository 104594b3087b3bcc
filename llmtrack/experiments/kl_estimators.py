"""The KL-estimator lab: k1, k2, k3 in the reward or in the loss, in exact expectation (docs/equations.md §11).

On a markov task small enough to enumerate every response (V = 8 tokens, T = 4), a policy pi
(the task's KL-regularised optimum pi*_beta at ``policy_beta``, as after RLHF) and its reference
pi_ref (the task's bigram): the exact sequence KL(d^pi || d^ref) and its exact gradient with respect
to pi's logit table, and for each per-token estimator k in {k1, k2, k3} summed over the response,

    value / bias    E_pi[K] and E_pi[K] - KL          variance   Var_pi[K]
    gradient        in the reward (stop-gradient penalty, REINFORCE advantages, PPO's surrogate),
                    in the loss (differentiated through log pi), in the loss times the importance
                    ratio pi/pi_old -- each against the exact gradient: cosine and relative error.

Off policy -- what PPO does after its first minibatch step, when the batch was sampled by pi_old and the
gradient is taken at pi -- the same combinations with the expectations under d^{pi_old}: the reward's
penalty computed from pi_old's log-probs (stale at pi) through PPO's per-token ratio pi/pi_old, clipped at
PPO's default eps = 0.2 and unclipped, ``KLLoss`` at pi with and without the ratio, and as references the
sequence-level importance weight d^pi/d^{pi_old} with the penalty recomputed at pi (exact for k1). Two stated
perturbations give pi_old: pi*_beta at ``behaviour_beta`` (the sampler a step behind on the way from pi_ref,
the direction RLHF moves), and pi's logits plus ``behaviour_noise`` times seeded standard normal noise (a
direction with no structure); each reports KL(d^old || d^pi) and PPO's clip fraction.

Every number comes from :func:`minirl.algos.kl_penalty.exact_kl_gradients` and
:func:`~minirl.algos.kl_penalty.exact_off_policy_kl_gradients`, which use the same functions as the
library's PPO paths (``KLPenalisedReward(estimator=...)``, ``clipped_surrogate`` and ``KLLoss``): what the
table says about a combination is what minirl does when configured that way. Nothing is sampled: the
expectations are sums over the enumeration, so the table has no seed noise (the ``seed`` picks the task and
the noise direction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from minirl.algos.kl_penalty import exact_kl_gradients, exact_off_policy_kl_gradients
from minirl.algos.ppo import PPOConfig
from minirl.checks import check_int, check_number, check_seed
from minirl.data import TrajectoryBatch
from llmtrack.tasks.answer_key import enumerate_responses
from llmtrack.tasks.markov import BigramPolicy, MarkovTask

__all__ = ["KLEstimatorConfig", "run_kl_estimators", "kl_estimators_table", "PLACEMENTS", "OFF_POLICY_ROWS"]

PLACEMENTS = {"reward": "in the reward (stop-grad)", "loss": "in the loss", "loss_ratio": "in the loss x ratio"}

OFF_POLICY_ROWS = {  # (estimators shown, label): what the off-policy table shows of exact_off_policy_kl_gradients
    "reward": (("k1", "k2", "k3"), "in the reward, stale, token ratio, clipped (PPO)"),
    "reward_unclipped": (("k1", "k2", "k3"), "in the reward, stale, token ratio, unclipped"),
    "loss": (("k1", "k2", "k3"), "in the loss"),
    "loss_ratio": (("k1", "k2", "k3"), "in the loss x token ratio"),
    "token_reward_fresh": (("k1",), "in the reward, at pi, token ratio (not in minirl)"),
    "sequence_reward_stale": (("k1",), "in the reward, stale, sequence ratio (not in minirl)"),
    "sequence_reward": (("k1",), "in the reward, at pi, sequence ratio (reference)")}


@dataclass(frozen=True)
class KLEstimatorConfig:
    """The lab's instance: a tiny markov task, and which policy is measured against pi_ref."""

    n_words: int = 3
    """Words in the vocabulary (V = n_words + 5 specials)."""
    max_new_tokens: int = 4
    """T, the response horizon."""
    policy_beta: float = 0.5
    """pi = pi*_beta of the task at this beta (smaller: further from pi_ref)."""
    behaviour_beta: float = 0.6
    """Off policy: pi_old = pi*_beta at this beta (larger than ``policy_beta``: pi_old is nearer pi_ref)."""
    behaviour_noise: float = 0.2
    """Off policy: pi_old = softmax(log pi + this x standard normal noise, seeded by ``seed``); 0 = pi."""
    seed: int = 0
    """Seeds the task's pi_ref and the noise direction."""

    def __post_init__(self) -> None:
        check_int(self.n_words, "n_words", 2, 4)
        check_int(self.max_new_tokens, "max_new_tokens", 1, 5)
        check_number(self.policy_beta, "policy_beta", 0.0, strict_minimum=True)
        check_number(self.behaviour_beta, "behaviour_beta", 0.0, strict_minimum=True)
        check_number(self.behaviour_noise, "behaviour_noise", 0.0)
        check_seed(self.seed)


def _instance(config: KLEstimatorConfig) -> tuple[MarkovTask, nn.Parameter, BigramPolicy, TrajectoryBatch, torch.Tensor]:
    task = MarkovTask(n_words=config.n_words, max_new_tokens=config.max_new_tokens, branching=config.n_words,
                      seed=config.seed)
    theta = nn.Parameter(task.optimal_policy(config.policy_beta).log_table.double().clone())  # (T, V, V) logits
    policy = BigramPolicy(torch.log_softmax(theta, -1))  # differentiable in theta
    prompts, weights = task.prompt_support()
    batches, prompt_weights = [], []
    for prompt, w in zip(prompts, weights):
        batch, _ = enumerate_responses(task, prompt, policy)
        batches.append(batch.replace(info={}))
        prompt_weights.append(torch.full((batch.batch_size,), float(w), dtype=torch.float64))
    return task, theta, policy, TrajectoryBatch.cat(batches), torch.cat(prompt_weights)


def run_kl_estimators(config: KLEstimatorConfig = KLEstimatorConfig()) -> dict[str, Any]:
    """The lab's rows (module docstring) and the exact KL; JSON-ready (gradients as norms only)."""
    if not isinstance(config, KLEstimatorConfig):
        raise ValueError(f"config: must be a KLEstimatorConfig, got {type(config).__name__}")
    task, theta, policy, batch, prompt_weights = _instance(config)
    exact = exact_kl_gradients(policy, task.base, batch, prompt_weights, [theta])
    noise = torch.randn(theta.shape, generator=torch.Generator().manual_seed(config.seed), dtype=torch.float64)
    behaviours = {  # name -> pi_old; the noise keeps pi's zeros (-inf + x = -inf): the same support
        f"pi*_{config.behaviour_beta:g}": task.optimal_policy(config.behaviour_beta),
        f"pi + {config.behaviour_noise:g} N(0, 1) logit noise": BigramPolicy(
            torch.log_softmax(theta.detach() + config.behaviour_noise * noise, -1))}
    clip_eps = PPOConfig().clip_eps  # PPO's default clipping
    off_policy = []
    for name, behaviour in behaviours.items():
        with torch.no_grad():
            sampled = batch.replace(log_probs=behaviour.log_prob(batch).double())  # the sampler's log-probs
        off = exact_off_policy_kl_gradients(policy, task.base, sampled, prompt_weights, [theta], clip_eps)
        off_policy.append({"behaviour": name, "kl_old_to_policy": off["kl_old_to_policy"], "clip_eps": clip_eps,
                           "clip_fraction": off["clip_fraction"], "rows": _rows(off)})
    return {"config": {"n_words": config.n_words, "max_new_tokens": config.max_new_tokens,
                       "vocab_size": task.vocab_size, "policy_beta": config.policy_beta,
                       "behaviour_beta": config.behaviour_beta, "behaviour_noise": config.behaviour_noise,
                       "seed": config.seed},
            "responses": batch.batch_size, "exact_kl": exact["kl"], "exact_grad_norm": float(exact["grad"].norm()),
            "rows": _rows(exact), "off_policy": off_policy}


def _rows(exact: dict[str, Any]) -> list[dict[str, Any]]:
    """One JSON-ready row per "estimator/placement" entry of an exact_*_kl_gradients result."""
    rows = []
    for key, value in exact.items():
        if "/" not in key:
            continue
        estimator, placement = key.split("/")
        rows.append({"estimator": estimator, "placement": placement, "expected": value["value"],
                     "bias": value["bias"], "variance": value["variance"], "cosine": value["cosine"],
                     "rel_error": value["rel_error"], "grad_norm": float(value["grad"].norm()),
                     "unbiased_gradient": value["rel_error"] < 1e-5})
    return rows


def kl_estimators_table(result: dict[str, Any]) -> str:
    """Markdown tables of the lab: one row per estimator and placement on policy, then one table per pi_old
    with the rows of ``OFF_POLICY_ROWS``."""
    c = result["config"]
    lines = [f"KL(d^pi || d^ref) = {result['exact_kl']:.4f} exactly over {result['responses']} responses "
             f"(V = {c['vocab_size']}, T = {c['max_new_tokens']}, pi = pi*_{c['policy_beta']:g}); "
             f"|grad KL| = {result['exact_grad_norm']:.4f}", "",
             "| estimator | placement | E[K] | bias | Var[K] | norm of E[grad] | cosine to grad KL | relative error |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [_table_row(r, PLACEMENTS[r["placement"]]) for r in result["rows"]]
    for off in result.get("off_policy", []):
        rows = {(r["estimator"], r["placement"]): r for r in off["rows"]}
        lines += ["", f"Off policy: samples from pi_old = {off['behaviour']}, gradient at pi; KL(d^old || d^pi) = "
                  f"{off['kl_old_to_policy']:.4f}, {100 * off['clip_fraction']:.1f}% of pi_old's tokens outside "
                  f"PPO's clip range (eps = {off['clip_eps']:g})", "",
                  "| estimator | placement | E_old[K] | bias | Var_old[K] | norm of E[grad] | cosine to grad KL | "
                  "relative error |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        lines += [_table_row(rows[est, placement], label)
                  for placement, (estimators, label) in OFF_POLICY_ROWS.items() for est in estimators]
    return "\n".join(lines)


def _table_row(r: dict[str, Any], label: str) -> str:
    """One markdown row of a lab table (a zero gradient's cosine is "undefined")."""
    cos = "undefined" if math.isnan(r["cosine"]) else f"{r['cosine']:+.4f}"
    return (f"| {r['estimator']} | {label} | {r['expected']:.4f} | {r['bias']:+.4f} | {r['variance']:.4f} | "
            f"{r['grad_norm']:.4f} | {cos} | {r['rel_error']:.2e} |")
