"""The KL-estimator lab: k1, k2, k3 in the reward or in the loss, in exact expectation (docs/equations.md §11).

On a markov task small enough to enumerate every response (V = 8 tokens, T = 4), a policy pi
(the task's KL-regularised optimum pi*_beta at ``policy_beta``, as after RLHF) and its reference
pi_ref (the task's bigram): the exact sequence KL(d^pi || d^ref) and its exact gradient with respect
to pi's logit table, and for each per-token estimator k in {k1, k2, k3} summed over the response,

    value / bias    E_pi[K] and E_pi[K] - KL          variance   Var_pi[K]
    gradient        in the reward (stop-gradient penalty, REINFORCE advantages, PPO's surrogate),
                    in the loss (differentiated through log pi), in the loss times the importance
                    ratio pi/pi_old -- each against the exact gradient: cosine and relative error.

Every number comes from :func:`minirl.algos.kl_penalty.exact_kl_gradients`, which uses the same
functions as the library's PPO paths (``KLPenalisedReward(estimator=...)`` and ``KLLoss``): what the
table says about a combination is what minirl does when configured that way. Nothing is sampled: the
expectations are sums over the enumeration, so the table has no seed noise (the ``seed`` picks the task).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from minirl.algos.kl_penalty import exact_kl_gradients
from minirl.checks import check_int, check_number, check_seed
from minirl.data import TrajectoryBatch
from llmtrack.tasks.answer_key import enumerate_responses
from llmtrack.tasks.markov import BigramPolicy, MarkovTask

__all__ = ["KLEstimatorConfig", "run_kl_estimators", "kl_estimators_table", "PLACEMENTS"]

PLACEMENTS = {"reward": "in the reward (stop-grad)", "loss": "in the loss", "loss_ratio": "in the loss x ratio"}


@dataclass(frozen=True)
class KLEstimatorConfig:
    """The lab's instance: a tiny markov task, and which policy is measured against pi_ref."""

    n_words: int = 3
    """Words in the vocabulary (V = n_words + 5 specials)."""
    max_new_tokens: int = 4
    """T, the response horizon."""
    policy_beta: float = 0.5
    """pi = pi*_beta of the task at this beta (smaller: further from pi_ref)."""
    seed: int = 0
    """Seeds the task's pi_ref."""

    def __post_init__(self) -> None:
        check_int(self.n_words, "n_words", 2, 4)
        check_int(self.max_new_tokens, "max_new_tokens", 1, 5)
        check_number(self.policy_beta, "policy_beta", 0.0, strict_minimum=True)
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
    rows = []
    for key, value in exact.items():
        if "/" not in key:
            continue
        estimator, placement = key.split("/")
        rows.append({"estimator": estimator, "placement": placement, "expected": value["value"],
                     "bias": value["bias"], "variance": value["variance"], "cosine": value["cosine"],
                     "rel_error": value["rel_error"], "grad_norm": float(value["grad"].norm()),
                     "unbiased_gradient": value["rel_error"] < 1e-5})
    return {"config": {"n_words": config.n_words, "max_new_tokens": config.max_new_tokens,
                       "vocab_size": task.vocab_size, "policy_beta": config.policy_beta, "seed": config.seed},
            "responses": batch.batch_size, "exact_kl": exact["kl"], "exact_grad_norm": float(exact["grad"].norm()),
            "rows": rows}


def kl_estimators_table(result: dict[str, Any]) -> str:
    """A markdown table of the lab (one row per estimator and placement)."""
    c = result["config"]
    lines = [f"KL(d^pi || d^ref) = {result['exact_kl']:.4f} exactly over {result['responses']} responses "
             f"(V = {c['vocab_size']}, T = {c['max_new_tokens']}, pi = pi*_{c['policy_beta']:g}); "
             f"|grad KL| = {result['exact_grad_norm']:.4f}", "",
             "| estimator | placement | E[K] | bias | Var[K] | norm of E[grad] | cosine to grad KL | relative error |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        cos = "undefined" if math.isnan(r["cosine"]) else f"{r['cosine']:+.4f}"
        lines.append(f"| {r['estimator']} | {PLACEMENTS[r['placement']]} | {r['expected']:.4f} | {r['bias']:+.4f} | "
                     f"{r['variance']:.4f} | {r['grad_norm']:.4f} | {cos} | {r['rel_error']:.2e} |")
    return "\n".join(lines)
