"""Evaluating a language policy against its task's exact expert (survey §2.4, §4.3; docs/equations.md §2, §3, §7).

All measurements read the expert's *exact* token probabilities pi*(a | s) (``task.expert``):

expert accuracy -- per-token agreement with the expert along the model's **own** generations,
    acc(pi) = E_{tau ~ p_pi} [ sum_t pi*(a_t | s_t) ] / E_{tau ~ p_pi} [ T(tau) ].
    For a deterministic expert (sort) pi*(a_t | s_t) = 1[a_t = a*(s_t)]: the fraction of
    tokens that match the expert's label, i.e. 1 - (survey eq. 1 mistakes) / tokens. For a
    stochastic expert (markov) it is the probability the expert gives the chosen token (the
    expert itself scores sum_a pi*(a|s)^2 there, not 1; ``reference`` reports that value).
mistakes vs list length (sort) -- survey eq. 1 on tokens,
    l(pi) = E_{tau ~ p_pi} sum_t 1[a_t != a*(s_t)],
    grouped by the number n of digits to sort (the horizon is n + 1): the LLM version of the
    compounding-error picture of :mod:`minirl.experiments.compounding_error`
    (:func:`minirl.mistakes.count_mistakes` does the counting).
forward / reverse KL of completed generations (docs/equations.md §2, eq. 5-6 and §7), Monte-Carlo
with exact log-probs on both sides, d(y | x) = prod_t pi(y_t | x, y_<t):
    forward  KL(d^beta || d^pi) = E_{x ~ rho0, y ~ pi*} [log d^beta(y|x) - log d^pi(y|x)]  (mass covering)
    reverse  KL(d^pi || d^beta) = E_{x ~ rho0, y ~ pi}  [log d^pi(y|x) - log d^beta(y|x)]   (mode seeking)
    each with the standard error of its mean over sequences (:func:`minirl.estimators.monte_carlo_kl`).
Every estimate is minirl's (:mod:`minirl.estimators`, :mod:`minirl.mistakes`); this module says which
samples, which policies and which expert.
    If the expert gives a sampled response probability 0 (a deterministic expert, or a sparse one),
    the reverse KL is +inf and ``off_support`` says how often that happened.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.estimators import KLEstimate, mean_se, monte_carlo_kl, ratio_se, sequence_log_prob
from minirl.mistakes import count_mistakes, slips
from minirl.policies import Policy, check_same_actions
from llmtrack.tasks import SortTask, Task

__all__ = ["EvalConfig", "expert_credit", "expert_accuracy", "mistakes_by_length", "forward_kl", "reverse_kl",
           "compounding", "evaluate"]


@dataclass(frozen=True)
class EvalConfig:
    """How a policy is measured."""

    n_sequences: int = 1000
    """Own generations (and expert samples for the forward KL) per measurement."""
    seed: int = 12345
    """Seeds prompts and sampling; kept apart from training seeds so models are compared on the same prompts."""
    greedy: bool = True
    """Also measure greedy decoding (the deterministic policy pi(s) = argmax of survey eq. 1)."""

    def __post_init__(self) -> None:
        check_int(self.n_sequences, "n_sequences", 2)
        check_seed(self.seed)
        check_seed(self.seed + 1, "seed")  # the expert's samples use seed + 1
        if not isinstance(self.greedy, bool):
            raise ValueError(f"greedy: must be True or False, got {self.greedy!r}")


@torch.no_grad()
def expert_credit(task: Task, batch: TrajectoryBatch) -> Tensor:
    """pi*(a_t | s_t) at every real step, (B, T), zero on padding (module docstring)."""
    return torch.where(batch.mask, task.expert.log_prob(batch).exp(), torch.zeros(batch.mask.shape))


def expert_accuracy(task: Task, batch: TrajectoryBatch) -> tuple[float, float]:
    """(per-token expert agreement, its standard error) over the real steps of ``batch``."""
    credit = expert_credit(task, batch)
    return ratio_se(credit.sum(1), batch.lengths)


def mistakes_by_length(task: SortTask, batch: TrajectoryBatch) -> dict[int, tuple[float, float, int]]:
    """Seed eq. 1 per list length n: {n: (mean mistakes per sequence, standard error, sequences)}."""
    if not isinstance(task, SortTask):
        raise ValueError(f"task: mistakes by list length needs the sort task, got {task.name!r}")
    mistakes = count_mistakes(batch, task.expert)  # (B,)
    _, n = task.targets(batch)
    out = {}
    for length in range(task.min_len, task.max_len + 1):
        m = mistakes[n == length]
        if len(m):
            out[length] = (*mean_se(m), len(m))  # the standard error is NaN for one sequence
    return out


def forward_kl(policy: Policy, task: Task, n: int = 1000, seed: int = 0,
               expert_samples: TrajectoryBatch | None = None) -> KLEstimate:
    """KL(d^beta || d^pi): expert samples, E[log d^beta(y|x) - log d^pi(y|x)] (module docstring)."""
    check_same_actions(task.expert, policy, "task", "policy")
    y = task.demonstrations(n, seed=seed) if expert_samples is None else expert_samples
    return monte_carlo_kl(sequence_log_prob(task.expert, y), sequence_log_prob(policy, y))


def reverse_kl(policy: Policy, task: Task, n: int = 1000, seed: int = 0,
               own_samples: TrajectoryBatch | None = None) -> KLEstimate:
    """KL(d^pi || d^beta): the policy's samples, E[log d^pi(y|x) - log d^beta(y|x)] (module docstring)."""
    check_same_actions(task.expert, policy, "task", "policy")
    y = task.rollout(policy, n, seed=seed) if own_samples is None else own_samples
    return monte_carlo_kl(sequence_log_prob(policy, y), sequence_log_prob(task.expert, y))


def compounding(task: Task, batch: TrajectoryBatch) -> dict[str, float]:
    """Seed eq. 1 split in two: how often a generation goes wrong, and what a first mistake costs.

    mistakes = mean mistakes per sequence; slip_rate = P(at least one mistake);
    mistakes_after_first = E[mistakes - 1 | at least one] -- the compounding (0 if the model
    recovers at once; up to the rest of the sequence if it never does).
    """
    return slips(count_mistakes(batch, task.expert))  # minirl.mistakes: counts (B,) -> the split


def evaluate(policy: Policy, task: Task, config: EvalConfig = EvalConfig()) -> dict[str, Any]:
    """Every measurement above on ``config.n_sequences`` own generations; a flat JSON-ready dict.

    Keys (own generations are sampled from the policy, i.e. p_pi of survey eq. 1):
        expert_accuracy(_se)   per-token agreement with the expert (module docstring)
        expert_accuracy_reference   the same score for the expert itself (1 for a deterministic expert)
        gold_reward(_se), response_tokens (mean length)
        forward_kl(_se), reverse_kl(_se) (inf where the expert gives a sample probability 0),
        reverse_kl_off_support
        mistakes, slip_rate, mistakes_after_first   (:func:`compounding`; only where the expert is
            deterministic on the generations -- for a stochastic expert its label is just its mode)
        expert_accuracy_greedy, gold_reward_greedy (, mistakes_greedy)   (if ``config.greedy``)
        mistakes_by_length {n: mean}   (sort only)
        eval_s
    """
    if not isinstance(config, EvalConfig):
        raise ValueError(f"config: must be an EvalConfig, got {type(config).__name__}")
    check_same_actions(task.expert, policy, "task", "policy")  # before any sampling
    start = time.perf_counter()
    own = task.rollout(policy, config.n_sequences, seed=config.seed)
    demos = task.demonstrations(config.n_sequences, seed=config.seed + 1)
    acc, acc_se = expert_accuracy(task, own)
    reward, reward_se = mean_se(own.info["gold_reward"])
    fwd = forward_kl(policy, task, expert_samples=demos)
    rev = reverse_kl(policy, task, own_samples=own)
    out: dict[str, Any] = {
        "expert_accuracy": acc, "expert_accuracy_se": acc_se,
        "expert_accuracy_reference": expert_accuracy(task, demos)[0],
        "gold_reward": reward, "gold_reward_se": reward_se,
        "response_tokens": float(own.lengths.double().mean()),
        "forward_kl": fwd.value, "forward_kl_se": fwd.se,
        "reverse_kl": rev.value, "reverse_kl_se": rev.se, "reverse_kl_off_support": rev.off_support,
    }
    credit = expert_credit(task, own)[own.mask]
    deterministic = bool(((credit == 0) | (credit == 1)).all())  # else "the expert's label" is only its mode
    if deterministic:
        out.update(compounding(task, own))
    if config.greedy:
        greedy = task.rollout(policy, config.n_sequences, seed=config.seed, deterministic=True)
        out["expert_accuracy_greedy"] = expert_accuracy(task, greedy)[0]
        out["gold_reward_greedy"] = float(greedy.info["gold_reward"].double().mean())
        if deterministic:
            out["mistakes_greedy"] = compounding(task, greedy)["mistakes"]
    if isinstance(task, SortTask):
        out["mistakes_by_length"] = {n: m for n, (m, _, _) in mistakes_by_length(task, own).items()}
    out["eval_s"] = time.perf_counter() - start
    return out
