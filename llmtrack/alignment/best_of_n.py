"""Best-of-N and RAFT on token tasks (seed §4.4; docs/equations.md §6).

Best-of-N: draw N responses y_1..y_N ~ pi(. | x), keep the one a scorer ranks highest. Over a finite
response space with reference probabilities p(y) = pi_ref(y | x) and the scorer's order, the policy
is known exactly (:func:`minirl.algos.best_of_n.best_of_n_distribution`):

    pi_BoN(y | x) = F(y)^N - F(y-)^N,      F the score-ordered CDF of p (ties share a block by p),

and its KL to the reference obeys (Beirami et al. 2024)

    KL(pi_BoN || pi_ref) <= log N - (N - 1) / N.

Three routes here:
    exact        :func:`exact_best_of_n` -- on a Markov instance small enough to list every response
                 (n_words 4-6, T = 3): enumerate each prompt's responses with exact pi_ref
                 probabilities (:func:`llmtrack.alignment.answer_key.enumerate_responses`), rank by
                 the scorer, exact pi_BoN, exact KL and expected rewards averaged over rho0.
    sampled      :func:`generate_best_of_n` -- any sampling policy (a transformer) and any scorer: N
                 generations per prompt with :func:`llmtrack.rollout.generate`, the best kept.
    RAFT         :func:`train_raft` -- iterative Best-of-N fine-tuning (Dong et al. 2023): rounds of
                 (sample N per prompt from the current policy, keep the best, SFT on the winners with
                 minirl's :func:`~minirl.algos.bc.train_bc`).

A scorer is an object with ``score(batch) -> (B,)`` (a reward model, e.g. minirl's
LinearRewardModel or :class:`llmtrack.alignment.overoptimisation.EnsembleScorer`) or a callable
batch -> (B,); None means the task's gold reward (an oracle scorer).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.best_of_n import best_of_n_distribution, best_of_n_kl, best_of_n_kl_bound
from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Policy, check_same_actions
from llmtrack.alignment.answer_key import _check_task, enumerate_responses
from llmtrack.rollout import generate
from llmtrack.tasks.base import Task, as_generator, check_count
from llmtrack.tasks.markov import MarkovTask

__all__ = ["Scorer", "as_scorer", "best_of_n_distributions", "exact_best_of_n", "sample_pool", "select_best",
           "generate_best_of_n", "RAFTConfig", "train_raft"]

Scorer = Callable[[TrajectoryBatch], Tensor]


def _check_n(n, field_name: str = "n") -> int:
    return check_int(n, field_name, 1)


def as_scorer(scorer: Any, task: Task | None = None) -> Scorer:
    """A function batch -> scores (B,) float64 from a reward model (``.score``), a callable, or None
    (the task's gold reward). Scores are computed without gradients and checked for shape."""
    if scorer is None:
        if task is None:
            raise ValueError("scorer: None means the task's gold reward, but no task was given")
        fn = task.gold_reward
    elif hasattr(scorer, "score") and callable(scorer.score):
        fn = scorer.score
    elif callable(scorer):
        fn = scorer
    else:
        raise ValueError(f"scorer: must have .score(batch) -> (B,) or be callable, got {type(scorer).__name__}")

    @torch.no_grad()
    def score(batch: TrajectoryBatch) -> Tensor:
        s = torch.as_tensor(fn(batch)).detach().cpu().double()
        if s.shape != (batch.batch_size,):
            raise ValueError(f"scorer: must return (B,) = ({batch.batch_size},) scores, got {tuple(s.shape)}")
        return s

    return score


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
    task = _check_task(task)
    n = _check_n(n)
    check_same_actions(task.expert, scorer, "task", "scorer")
    score = as_scorer(scorer, task)
    return [(resp, p, best_of_n_distribution(p, score(resp), n)) for resp, p in _enumerated(task, base)]


def exact_best_of_n(task: MarkovTask, ns: Sequence[int], scorer: Any = None, base=None) -> list[dict[str, float]]:
    """Exact Best-of-N for each N in ``ns`` on an enumerable Markov instance (module docstring).

    Rows {n, kl, kl_bound, gold_reward, proxy_reward}: kl = E_x KL(pi_BoN || pi_ref) (exact),
    kl_bound = log N - (N - 1)/N (Beirami et al. 2024), and the exact expected gold and scorer
    rewards of pi_BoN. With scorer=None the proxy is the gold reward.
    """
    task = _check_task(task)
    if isinstance(ns, (int, np.integer)) or len(ns) == 0:
        raise ValueError(f"ns: must be a non-empty sequence of integers >= 1, got {ns!r}")
    ns = [_check_n(n, "ns") for n in ns]
    check_same_actions(task.expert, scorer, "task", "scorer")
    score = as_scorer(scorer, task)
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


# -- sampled Best-of-N ------------------------------------------------------------------------------

def sample_pool(policy: Policy, prompts: Sequence[Sequence[int]], n: int, max_new_tokens: int,
                generator: torch.Generator | None = None) -> TrajectoryBatch:
    """N responses per prompt from ``policy``: a batch of B*N rows, row i*N + j = prompt i's j-th sample."""
    n = _check_n(n)
    if len(prompts) == 0:
        raise ValueError("prompts: need at least one prompt")
    repeated = [list(p) for p in prompts for _ in range(n)]
    return generate(policy, repeated, max_new_tokens, generator=generator)


def select_best(pool: TrajectoryBatch, scores: Tensor, n: int) -> Tensor:
    """Row index of the best of each consecutive group of N in ``pool`` (first wins ties), (B,)."""
    n = _check_n(n)
    if pool.batch_size % n or scores.shape != (pool.batch_size,):
        raise ValueError(f"scores: need one score per pool row in groups of n = {n}, got {tuple(scores.shape)} "
                         f"for {pool.batch_size} rows")
    best = scores.view(-1, n).argmax(1)  # (B,)
    return torch.arange(0, pool.batch_size, n) + best


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
    n = _check_n(n)
    check_same_actions(task.expert, policy, "task", "policy")  # every model here reads the task's token ids
    check_same_actions(policy, scorer, "policy", "scorer")
    score = as_scorer(scorer, task)
    g = as_generator(generator, "generator")
    if isinstance(prompts, (int, np.integer)):
        prompts = task.sample_prompts(check_count(prompts, "prompts"), g)
    pool = sample_pool(policy, prompts, n, task.max_new_tokens, g)
    proxy, gold = score(pool), task.gold_reward(pool).double()
    best = select_best(pool, proxy, n)
    winners = pool[best]
    return winners.replace(info={"proxy_reward": proxy[best], "gold_reward": gold[best],
                                 "proxy_pool": proxy.view(-1, n), "gold_pool": gold.view(-1, n)})


# -- RAFT: iterative Best-of-N fine-tuning ------------------------------------------------------------

@dataclass(frozen=True)
class RAFTConfig:
    """Hyperparameters of RAFT / iterative Best-of-N fine-tuning (docs/equations.md §6, Dong et al. 2023)."""

    n_rounds: int = 4
    """Rounds of (sample, select, fine-tune)."""
    n: int = 8
    """N: samples per prompt; the best one is kept."""
    prompts_per_round: int = 64
    """Fresh prompts drawn from rho0 each round (one winner each)."""
    bc: BCConfig = field(default_factory=lambda: BCConfig(n_updates=50, lr=1e-3))
    """How the winners are fitted (minirl's BC = SFT); its seed is offset by the round."""
    seed: int = 0
    """Seeds prompts, sampling and the BC minibatches."""
    progress: bool = False
    """tqdm bar over rounds."""

    def __post_init__(self) -> None:
        for name in ("n_rounds", "n", "prompts_per_round"):
            _check_n(getattr(self, name), name)
        if not isinstance(self.bc, BCConfig):
            raise ValueError(f"bc: must be a BCConfig, got {type(self.bc).__name__}")
        check_seed(self.seed)


def train_raft(policy: Policy, task: Task, scorer: Any = None,
               config: RAFTConfig = RAFTConfig()) -> dict[str, list[float]]:
    """RAFT (docs/equations.md §6 "Iterative tuning / RAFT"): fine-tune ``policy`` in place on its own best samples.

    Each round: draw ``prompts_per_round`` prompts, N samples each from the current policy
    (:func:`generate_best_of_n`), keep the scorer's best, and run :func:`minirl.algos.bc.train_bc`
    on the winners. ``policy`` must be a trainable torch module.

    Returns one value per round: "raft/proxy_sampled", "raft/gold_sampled" (mean over all samples:
    the policy before the round's update), "raft/proxy_best", "raft/gold_best" (the winners),
    "loss/bc" (last BC loss).
    """
    if not isinstance(config, RAFTConfig):
        raise ValueError(f"config: must be a RAFTConfig, got {type(config).__name__}")
    if not any(p.requires_grad for p in getattr(policy, "parameters", lambda: [])()):
        raise ValueError("policy: RAFT fine-tunes the policy, which needs trainable parameters (a torch module)")
    score = as_scorer(scorer, task)
    g = torch.Generator().manual_seed(int(config.seed))
    keys = ("raft/proxy_sampled", "raft/gold_sampled", "raft/proxy_best", "raft/gold_best", "loss/bc")
    history: dict[str, list[float]] = {k: [] for k in keys}
    for r in tqdm(range(config.n_rounds), desc="RAFT", disable=not config.progress):
        # BEGIN SOLUTION
        winners = generate_best_of_n(policy, task, config.prompts_per_round, config.n, score, generator=g)
        bc = dataclasses.replace(config.bc, seed=config.bc.seed + r)
        loss = train_bc(policy, winners, bc)["loss/bc"]
        # END SOLUTION
        info = winners.info
        for key, value in zip(keys, (info["proxy_pool"].mean(), info["gold_pool"].mean(),
                                     info["proxy_reward"].mean(), info["gold_reward"].mean(), loss[-1])):
            history[key].append(float(value))
    return history

