"""RAFT: iterative Best-of-N fine-tuning (Dong et al. 2023; survey §4.4; docs/equations.md §6).

Best-of-N at inference costs N samples per answer. RAFT distils it into the policy: each round,

    1. draw a pool: N samples for each of K prompts from the *current* policy      (the pool source)
    2. keep the best of each prompt's N by the scorer                               (select_best)
    3. fit the policy to the K winners by behaviour cloning                         (minirl.algos.bc)

so the policy moves towards its own Best-of-N distribution pi_BoN = F^N - F_-^N (docs/equations.md §6),
and the next round's Best-of-N starts from there. The policy never sees a reward value, only which
sample won: RAFT is rejection sampling followed by SFT.

Design: the algorithm is written against a *pool source*, a callable
``source(n_prompts, n, generator) -> TrajectoryBatch`` returning n_prompts * n trajectories, row
i * n + j being prompt i's j-th sample (a language model's sampled responses, a tabular policy's
episodes from start states). The trainer owns the generator (seeded by ``config.seed``) so one config
reproduces a run. A scorer is anything :func:`minirl.scorers.as_scorer` accepts; ``monitor`` is an
optional second scorer (a gold reward) that is only logged, never selected on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from minirl.algos.bc import BCConfig, train_bc
from minirl.algos.best_of_n import select_best
from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Policy
from minirl.scorers import as_scorer

__all__ = ["RAFTConfig", "PoolSource", "train_raft"]

PoolSource = Callable[[int, int, torch.Generator], TrajectoryBatch]
"""(n_prompts, n, generator) -> a pool of n_prompts * n trajectories, row i * n + j = prompt i's j-th sample."""


@dataclass(frozen=True)
class RAFTConfig:
    """Hyperparameters of RAFT / iterative Best-of-N fine-tuning (docs/equations.md §6, Dong et al. 2023)."""

    n_rounds: int = 4
    """Rounds of (sample, select, fine-tune)."""
    n: int = 8
    """N: samples per prompt; the best one is kept."""
    prompts_per_round: int = 64
    """Fresh prompts (start states) drawn each round (one winner each)."""
    bc: BCConfig = field(default_factory=lambda: BCConfig(n_updates=50, lr=1e-3))
    """How the winners are fitted (minirl's BC = SFT); its seed is offset by the round."""
    seed: int = 0
    """Seeds the pool source's generator (prompts and sampling)."""
    progress: bool = False
    """tqdm bar over rounds."""

    def __post_init__(self) -> None:
        for name in ("n_rounds", "n", "prompts_per_round"):
            check_int(getattr(self, name), name, 1)
        if not isinstance(self.bc, BCConfig):
            raise ValueError(f"bc: must be a BCConfig, got {type(self.bc).__name__}")
        check_seed(self.seed)


def train_raft(policy: Policy, source: PoolSource, scorer: Any, config: RAFTConfig = RAFTConfig(),
               monitor: Any = None) -> dict[str, list[float]]:
    """RAFT (module docstring): fine-tune ``policy`` in place on its own best samples.

    Args:
        policy: a trainable policy (a torch module with parameters) that ``source`` samples from.
        source: the pool source (module docstring).
        scorer: ranks the pool's trajectories (a reward model, a callable; see minirl.scorers).
        config: :class:`RAFTConfig`.
        monitor: optional scorer logged beside (e.g. the gold reward); never used to select.
    Returns:
        one value per round: "raft/proxy_sampled" (mean score over the pool: the policy before the round's
        update), "raft/proxy_best" (the winners), "loss/bc" (last BC loss), and with a monitor
        "raft/gold_sampled" and "raft/gold_best".
    """
    if not isinstance(config, RAFTConfig):
        raise ValueError(f"config: must be a RAFTConfig, got {type(config).__name__}")
    if not any(p.requires_grad for p in getattr(policy, "parameters", lambda: [])()):
        raise ValueError("policy: RAFT fine-tunes the policy, which needs trainable parameters (a torch module)")
    if not callable(source):
        raise ValueError(f"source: must be a callable (n_prompts, n, generator) -> pool, got {type(source).__name__}")
    score = as_scorer(scorer)
    watch = None if monitor is None else as_scorer(monitor)
    g = torch.Generator().manual_seed(int(config.seed))
    keys = ("raft/proxy_sampled", "raft/gold_sampled", "raft/proxy_best", "raft/gold_best", "loss/bc")
    history: dict[str, list[float]] = {k: [] for k in keys if watch is not None or "gold" not in k}
    for r in tqdm(range(config.n_rounds), desc="RAFT", disable=not config.progress):
        pool = source(config.prompts_per_round, config.n, g)  # (K * N) trajectories
        if not isinstance(pool, TrajectoryBatch) or pool.batch_size != config.prompts_per_round * config.n:
            raise ValueError(f"source: must return a TrajectoryBatch of prompts_per_round * n = "
                             f"{config.prompts_per_round * config.n} trajectories")
        proxy = score(pool)  # (K * N,)
        best = select_best(proxy, config.n)  # (K,): the winner of each prompt's N
        bc = dataclasses.replace(config.bc, seed=config.bc.seed + r)
        loss = train_bc(policy, pool[best], bc)["loss/bc"]  # SFT on the winners
        values = {"raft/proxy_sampled": proxy.mean(), "raft/proxy_best": proxy[best].mean(), "loss/bc": loss[-1]}
        if watch is not None:
            gold = watch(pool)
            values.update({"raft/gold_sampled": gold.mean(), "raft/gold_best": gold[best].mean()})
        for key in history:
            history[key].append(float(values[key]))
    return history
