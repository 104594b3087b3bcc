"""Best-of-N and RAFT on a language model: minirl's estimators and trainer, llmtrack's sampling (survey §4.4).

The mathematics is minirl's (:mod:`minirl.algos.best_of_n`, :mod:`minirl.algos.raft`; docs/equations.md
§6, §8): pi_BoN(y | x) = F(y)^N - F(y-)^N over a finite response space, the bound
KL(pi_BoN || pi_ref) <= log N - (N - 1) / N, the best of each group of N, the unbiased pool weights,
RAFT's rounds of (sample, select, fine-tune). What this module adds is the world:

    sample_pool            N responses per prompt from a token policy (:func:`llmtrack.rollout.generate`),
                           row i * N + j = prompt i's j-th response
    generate_best_of_n     sampled Best-of-N for any policy and scorer, the winners with their scores
    exact_best_of_n        on a Markov instance small enough to list every response (n_words 4-6, T = 3):
                           each prompt's responses with exact pi_ref probabilities
                           (:func:`llmtrack.tasks.answer_key.enumerate_responses`), exact pi_BoN, its KL and
                           expected rewards averaged over rho0
    best_of_n_curve        every N from one pool of samples per prompt (:func:`minirl.algos.best_of_n.pool_best_of_n`)
    best_of_n_point        gold reward and the two KLs of sampled Best-of-N, F(y-) read off a pool
    train_raft             RAFT with the task's prompts as its pool source, the gold reward logged beside

A scorer is what :func:`minirl.scorers.as_scorer` accepts (a reward model, a callable); None means the
task's gold reward (an oracle scorer).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from minirl.algos.best_of_n import (best_of_n_distribution, best_of_n_kl, best_of_n_kl_bound, best_of_n_mass,
                                    check_ns, pool_best_of_n, select_best)
from minirl.algos import raft as minirl_raft
from minirl.algos.raft import PoolSource, RAFTConfig
from minirl.checks import check_int
from minirl.data import TrajectoryBatch
from minirl.estimators import mean_se, sequence_log_prob
from minirl.policies import Policy, check_same_actions
from minirl.scorers import as_scorer
from llmtrack.reward_model import score_batch
from llmtrack.rollout import generate
from llmtrack.tasks.answer_key import check_markov_task, enumerate_responses
from llmtrack.tasks.base import Task, as_generator
from llmtrack.tasks.markov import MarkovTask

__all__ = ["sample_pool", "generate_best_of_n", "best_of_n_distributions", "exact_best_of_n", "best_of_n_curve",
           "best_of_n_point", "task_pool_source", "train_raft"]


def sample_pool(policy: Policy, prompts: Sequence[Sequence[int]], n: int, max_new_tokens: int,
                generator: torch.Generator | None = None) -> TrajectoryBatch:
    """N responses per prompt from ``policy``: a batch of B*N rows, row i*N + j = prompt i's j-th sample."""
    n = check_int(n, "n", 1)
    if len(prompts) == 0:
        raise ValueError("prompts: need at least one prompt")
    repeated = [list(p) for p in prompts for _ in range(n)]
    return generate(policy, repeated, max_new_tokens, generator=generator)


def generate_best_of_n(policy: Policy, task: Task, prompts: Sequence[Sequence[int]] | int, n: int,
                       scorer: Any = None, generator: torch.Generator | int | None = None) -> TrajectoryBatch:
    """Sampled Best-of-N (docs/equations.md §6): N responses per prompt, the scorer's best kept.

    Args:
        policy: any sampling policy (an LMPolicy, a task's exact policy).
        task: gives the horizon T and the gold reward (for evaluation only).
        prompts: token-id prompts, or a count to draw from the task's rho0 with ``generator``.
        n: N >= 1.
        scorer: reward model (``.score``), callable, or None = the gold reward.
        generator: seed or torch.Generator.
    Returns:
        the winners, one per prompt, with info {"proxy_reward", "gold_reward", "proxy_pool",
        "gold_pool"} -- the winners' scores (B,) and every sample's scores (B, N).
    """
    n = check_int(n, "n", 1)
    check_same_actions(task.expert, policy, "task", "policy")  # every model here reads the task's token ids
    check_same_actions(policy, scorer, "policy", "scorer")
    score = as_scorer(scorer, task.gold_reward)
    g = as_generator(generator, "generator")
    if isinstance(prompts, (int, np.integer)):
        prompts = task.sample_prompts(check_int(prompts, "prompts", 1), g)
    pool = sample_pool(policy, prompts, n, task.max_new_tokens, g)
    proxy, gold = score(pool), task.gold_reward(pool).double()
    best = select_best(proxy, n)
    winners = pool[best]
    return winners.replace(info={"proxy_reward": proxy[best], "gold_reward": gold[best],
                                 "proxy_pool": proxy.view(-1, n), "gold_pool": gold.view(-1, n)})


# -- exact Best-of-N over every response ------------------------------------------------------------

def _enumerated(task: MarkovTask, base) -> list[tuple[TrajectoryBatch, Tensor]]:
    """Every prompt's responses and their probabilities p = base(y | x) (float64, summing to 1)."""
    out = []
    for prompt in task.prompt_support()[0]:
        responses, log_p = enumerate_responses(task, prompt, base)
        p = log_p.exp()
        out.append((responses, p / p.sum()))  # remove float round-off; the enumeration is complete
    return out


def best_of_n_distributions(task: MarkovTask, n: int, scorer: Any = None,
                            base=None) -> list[tuple[TrajectoryBatch, Tensor, Tensor]]:
    """For each prompt in rho0's support: (every response, p = pi_ref(y|x), q = pi_BoN(y|x)), float64 (B,).

    pi_BoN(y|x) = F(y)^N - F(y-)^N over the responses ranked by ``scorer`` (docs/equations.md §6); ``base``
    (default ``task.base``) is the policy the N responses are drawn from.
    """
    task = check_markov_task(task)
    n = check_int(n, "n", 1)
    check_same_actions(task.expert, scorer, "task", "scorer")
    score = as_scorer(scorer, task.gold_reward)
    return [(resp, p, best_of_n_distribution(p, score(resp), n)) for resp, p in _enumerated(task, base)]


def exact_best_of_n(task: MarkovTask, ns: Sequence[int], scorer: Any = None, base=None) -> list[dict[str, float]]:
    """Exact Best-of-N for each N in ``ns`` on an enumerable Markov instance (module docstring).

    Rows {n, kl, kl_bound, gold_reward, proxy_reward}: kl = E_x KL(pi_BoN || pi_ref) (exact),
    kl_bound = log N - (N - 1)/N (Beirami et al. 2024), and the exact expected gold and scorer
    rewards of pi_BoN. With scorer=None the proxy is the gold reward.
    """
    task = check_markov_task(task)
    if isinstance(ns, (int, np.integer)) or len(ns) == 0:
        raise ValueError(f"ns: must be a non-empty sequence of integers >= 1, got {ns!r}")
    ns = [check_int(n, "ns", 1) for n in ns]
    check_same_actions(task.expert, scorer, "task", "scorer")
    score = as_scorer(scorer, task.gold_reward)
    _, rho0 = task.prompt_support()
    prompts = [(p, score(resp), resp.info["gold_reward"].double()) for resp, p in _enumerated(task, base)]
    rows = []
    for n in ns:
        kl = gold = proxy = 0.0
        for weight, (p, s, g) in zip(rho0, prompts):
            q = best_of_n_distribution(p, s, n)  # F(y)^N - F(y-)^N, minirl's (so is the KL)
            kl += weight * best_of_n_kl(p, s, n)
            gold += weight * float(q @ g)
            proxy += weight * float(q @ s)
        rows.append({"n": n, "kl": kl, "kl_bound": best_of_n_kl_bound(n), "gold_reward": gold,
                     "proxy_reward": proxy})
    return rows


# -- sampled Best-of-N, measured --------------------------------------------------------------------

def best_of_n_curve(policy: Policy, task: Task, proxy: Any, ns: Sequence[int], n_prompts: int = 32,
                    pool_size: int | None = None, seed: int = 0) -> list[dict[str, float]]:
    """Best-of-N against ``proxy``, watched with the gold reward, for each N in ``ns`` (docs/equations.md §8).

    One pool of ``pool_size`` (default max(ns)) samples of ``policy`` for each of ``n_prompts``
    prompts; every N is estimated from the same pool with the unbiased weights of
    :func:`minirl.algos.best_of_n.pool_best_of_n`. Standard errors are over prompts.

    Rows {n, kl, d, proxy, proxy_se, proxy_gain, proxy_gain_se, gold, gold_se, gold_gain, gold_gain_se}:
    kl = log N - (N-1)/N, d = sqrt(kl), *_gain = the estimate minus the pool mean (the N = 1 value, i.e.
    the reward relative to pi_ref that :func:`minirl.scaling_laws.fit_gao` wants; paired per prompt).
    """
    ns = check_ns(ns)
    n_prompts = check_int(n_prompts, "n_prompts", 2)
    M = ns[-1] if pool_size is None else check_int(pool_size, "pool_size", 1)
    if M < ns[-1]:
        raise ValueError(f"pool_size: must be >= max(ns) = {ns[-1]}, got {M}")
    score = as_scorer(proxy, task.gold_reward)
    g = as_generator(seed)
    pool = sample_pool(policy, task.sample_prompts(n_prompts, g), M, task.max_new_tokens, g)
    s, gold = score(pool).view(n_prompts, M), task.gold_reward(pool).double().view(n_prompts, M)  # (X, M)
    return pool_best_of_n(s, {"proxy": s, "gold": gold}, ns)


def best_of_n_point(base: Policy, task: MarkovTask, scorer: Any, n: int, n_samples: int, pool: int,
                    seed: int = 0) -> dict[str, float]:
    """Gold reward, KL(pi_BoN || pi_ref) and KL(pi_BoN || pi*) of sampled Best-of-N from ``base`` with ``scorer``.

    log pi_BoN(y|x) = log[(F- + p)^N - F-^N] (:func:`minirl.algos.best_of_n.best_of_n_mass`), p = pi_base(y|x)
    exact, F- = P_base(score < score(y) | x) estimated from ``pool`` independent base samples of the same
    prompt (scores of a reward model do not tie across responses).
    """
    g = torch.Generator().manual_seed(seed)
    winners = generate_best_of_n(base, task, n_samples, n, scorer=scorer, generator=g)
    P = winners.obs.shape[1] - winners.horizon
    prompts = winners.obs[:, :P]
    unique, which = torch.unique(prompts, dim=0, return_inverse=True)
    reference = sample_pool(base, [row[row != 0].tolist() for row in unique], pool, task.max_new_tokens, g)
    ref_scores = score_batch(scorer, reference).view(len(unique), pool)  # (U, pool)
    win_scores = winners.info["proxy_reward"].double()
    p = sequence_log_prob(base, winners).exp()
    # F(y-) from the pool, shrunk off 0 and 1 ((k + 1/2) / (M + 1)) and capped at 1 - p: a winner that
    # beats the whole pool must not get F(y) = F(y-) + p > 1.
    count = (ref_scores[which] < win_scores[:, None]).double().sum(1)
    below = torch.minimum((count + 0.5) / (pool + 1), 1.0 - p)
    log_bon = torch.log(best_of_n_mass(below + p, below, n).clamp_min(1e-300))
    to_ref = log_bon - sequence_log_prob(task.base, winners)
    to_opt = log_bon - sequence_log_prob(task.expert, winners)
    gold = winners.info["gold_reward"].double()
    (gold_mean, gold_se), (ref_mean, ref_se), (opt_mean, opt_se) = mean_se(gold), mean_se(to_ref), mean_se(to_opt)
    return {"gold_reward": gold_mean, "gold_reward_se": gold_se, "kl_to_ref": ref_mean, "kl_to_ref_se": ref_se,
            "kl_to_optimum": opt_mean, "kl_to_optimum_se": opt_se, "kl_bound": best_of_n_kl_bound(n),
            "n": winners.batch_size}


# -- RAFT: iterative Best-of-N fine-tuning ------------------------------------------------------------

def task_pool_source(policy: Policy, task: Task) -> PoolSource:
    """RAFT's pool source on a task: ``n_prompts`` prompts from rho0 and N responses each from ``policy``
    (its current weights at every call), all drawn from the trainer's generator."""
    def source(n_prompts: int, n: int, generator: torch.Generator) -> TrajectoryBatch:
        return sample_pool(policy, task.sample_prompts(n_prompts, generator), n, task.max_new_tokens, generator)
    return source


def train_raft(policy: Policy, task: Task, scorer: Any = None,
               config: RAFTConfig = RAFTConfig()) -> dict[str, list[float]]:
    """RAFT (docs/equations.md §6; :func:`minirl.algos.raft.train_raft`) on ``task``: fine-tune ``policy`` in place
    on its own best samples by ``scorer`` (None = the gold reward), the gold reward logged beside.

    Returns one value per round: "raft/proxy_sampled", "raft/gold_sampled" (mean over all samples: the policy
    before the round's update), "raft/proxy_best", "raft/gold_best" (the winners), "loss/bc" (last BC loss).
    """
    check_same_actions(task.expert, policy, "task", "policy")  # every model here reads the task's token ids
    check_same_actions(policy, scorer, "policy", "scorer")
    return minirl_raft.train_raft(policy, task_pool_source(policy, task), as_scorer(scorer, task.gold_reward), config,
                                  monitor=task.gold_reward)
