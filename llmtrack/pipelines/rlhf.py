"""PPO-RLHF and its Monte-Carlo cousins (REINFORCE, RLOO, GRPO): minirl's PPO on a language model.

The objective (docs/equations.md §6, survey §4.1/§4.4), for a scorer r (a reward model, or the gold
reward to check the answer key) and a frozen reference pi_ref:

    max_pi  E_{x, y ~ pi}[ r(x, y) ] - beta KL(pi(.|x) || pi_ref(.|x))
    optimum pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x)

written as a token-level reward, so that it is an MDP reward PPO can take:

    r_t = -beta (log pi_old(a_t|s_t) - log pi_ref(a_t|s_t))   at every response step
        + r(x, y)                                             added at the last step

Summed over a response, sum_t r_t = r(x, y) - beta log pi_old(y|x)/pi_ref(y|x), whose expectation
under pi_old is the objective above: the per-token penalty is an unbiased, per-step-credited
estimate of the KL term. With gamma = 1 this is exactly the problem the Markov task's answer key
solves (:meth:`llmtrack.tasks.markov.MarkovTask.optimal_policy`), so a run can be scored against
the exact optimum.

Nothing here is a trainer: :class:`ResponseSource` is a minirl *batch source*
(:mod:`minirl.sources`; it samples responses and reads the value head), minirl's
:class:`~minirl.algos.kl_penalty.KLPenalisedReward` is PPO's ``reward_fn``, and :func:`train_rlhf`
hands both to :meth:`minirl.algos.ppo.PPO.train`. GAE with the value head is PPO;
``PPOConfig(advantage="rloo" | "grpo" | "reinforce")`` with G responses per prompt is the
Monte-Carlo family -- the same update, another advantage estimate, no value head. (GRPO as
published puts the KL in the loss; here it stays in the reward for every estimator, as in
RLOO (Ahmadian et al. 2024), so all of them optimise the same objective.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from minirl.algos.kl_penalty import KLPenalisedReward
from minirl.algos.ppo import PPO, PPOConfig
from minirl.checks import check_int, check_number, check_seed
from minirl import parallel
from minirl.data import TrajectoryBatch, last_step
from minirl.policies import check_same_actions
from minirl.scorers import as_scorer
from minirl.sources import BatchSource
from llmtrack.policy import LMPolicy, check_not_shared, frozen_reference
from llmtrack.rollout import generate
from llmtrack.tasks import Task

# KLPenalisedReward and last_step live in minirl (algorithms and batch helpers); named here for callers
__all__ = ["RLHFConfig", "ResponseSource", "KLPenalisedReward", "last_step", "lm_ppo_config", "train_rlhf"]


class ResponseSource(BatchSource):
    """minirl's batch source for a language model: sample responses to fresh prompts.

    Each call draws ``n_prompts`` prompts from the task's rho0, repeats each ``group_size`` times
    (consecutive rows: ``batch.group_size``, for the group estimators) and samples the policy's
    responses. Every response ends its episode at its last real step: ``terminated`` at [EOS],
    ``truncated`` where it hit ``max_new_tokens`` (the token MDP's time limit). If the policy has a
    value head the batch also carries what GAE needs: V(s_t) and V(s_{t+1}), 0 after the last step
    -- the objective counts nothing beyond a response, so nothing is bootstrapped.
    ``episode_returns`` holds the batch's *gold* rewards, for logging only; the learner's reward
    is PPO's ``reward_fn``. Batches vary in size, so PPO's budget counts their tokens. Under ``accelerate
    launch`` each process samples its own ``n_prompts`` (seed ``parallel.process_seed(seed)``) and PPO
    gathers them: the batch is W x n_prompts prompts.
    """

    def __init__(self, policy: LMPolicy, task: Task, n_prompts: int = 32, group_size: int = 1, seed: int = 0):
        super().__init__()
        self.policy, self.task = policy, task
        self.n_prompts = check_int(n_prompts, "n_prompts", 1)
        self.group_size = check_int(group_size, "group_size", 1)
        self.generator = torch.Generator().manual_seed(parallel.process_seed(check_seed(seed)))  # own per process

    @torch.no_grad()
    def __call__(self) -> TrajectoryBatch:
        prompts = self.task.sample_prompts(self.n_prompts, self.generator)
        prompts = [p for p in prompts for _ in range(self.group_size)]
        batch = generate(self.policy, prompts, self.task.max_new_tokens, generator=self.generator)
        end = last_step(batch.mask)  # (B, T)
        self.episode_returns = self.task.gold_reward(batch).tolist()
        values = next_values = None
        if self.policy.value_head is not None:
            values = self.policy.values(batch).float().cpu()  # (B, T)
            next_values = torch.cat([values[:, 1:], torch.zeros(batch.batch_size, 1)], 1) * ~end  # (B, T)
        terminated = batch.terminated if batch.terminated is not None else torch.zeros_like(end)
        return batch.replace(values=values, next_values=next_values, truncated=end & ~terminated,
                             group_size=self.group_size)


def lm_ppo_config(advantage: str = "gae", lr: float = 3e-4) -> PPOConfig:
    """minirl's PPO settings for a language model's responses: gamma = 1 (the objective is undiscounted,
    as the answer key's), no learning-rate annealing (budgets are counted in sampled tokens), gradient
    norm clipped at 1; 4 epochs of 4 minibatches per batch."""
    return PPOConfig(lr=lr, gamma=1.0, gae_lambda=0.95, n_epochs=4, n_minibatches=4, anneal_lr=False,
                     max_grad_norm=1.0, advantage=advantage)


@dataclass(frozen=True)
class RLHFConfig:
    """One policy-optimisation run against a scorer (module docstring)."""

    beta: float = 1.0
    """KL coefficient: the optimum is pi_ref exp(r / beta) / Z (the Markov task's answer key uses task.beta)."""
    total_tokens: int = 20_000
    """Response tokens to sample in all (PPO's step budget)."""
    n_prompts: int = 32
    """Prompts per batch."""
    group_size: int = 1
    """Responses per prompt (>= 2 for rloo / grpo)."""
    ppo: PPOConfig = field(default_factory=lm_ppo_config)
    """minirl's PPO settings; ``ppo.advantage`` picks GAE (PPO) or a Monte-Carlo estimator."""
    seed: int = 0
    """Seeds the prompts and sampling (``ppo.seed`` the minibatches)."""
    progress: bool = False

    def __post_init__(self) -> None:
        check_number(self.beta, "beta", 0.0, strict_minimum=True)
        for name in ("total_tokens", "n_prompts", "group_size"):
            check_int(getattr(self, name), name, 1)
        if not isinstance(self.ppo, PPOConfig):
            raise ValueError(f"ppo: must be a PPOConfig, got {type(self.ppo).__name__}")
        check_seed(self.seed)
        if self.ppo.advantage != "gae" and self.ppo.advantage != "reinforce" and self.group_size < 2:
            raise ValueError(f"group_size: advantage {self.ppo.advantage!r} needs >= 2 responses per prompt, "
                             f"got {self.group_size}")


def train_rlhf(policy: LMPolicy, task: Task, scorer: Any, config: RLHFConfig = RLHFConfig(),
               reference: LMPolicy | None = None,
               callback: Callable[[dict[str, Any]], bool | None] | None = None) -> list[dict[str, Any]]:
    """Optimise ``policy`` in place against ``scorer`` with a per-token KL penalty to ``reference``.

    ``scorer``: a reward model (``score(batch)``), a callable batch -> (B,), or None for the
    task's gold reward (then the optimum is the Markov task's answer key exactly).

    PPO (``config.ppo.advantage == "gae"``) needs a value head; one is attached (zero-initialised)
    if the policy has none. ``reference`` defaults to a frozen copy of the policy as it is now.
    Returns PPO's history; each record also has the reward's 'reward/score', 'reward/kl' and
    'reward/return' and, under 'episode_return', the mean *gold* reward of the batch.
    """
    if not isinstance(config, RLHFConfig):
        raise ValueError(f"config: must be an RLHFConfig, got {type(config).__name__}")
    # every model that meets here reads the same token ids: policy, its reference, the scorer, the task
    check_same_actions(task.expert, policy, "task", "policy")
    check_same_actions(policy, scorer, "policy", "scorer")
    if reference is not None:
        check_same_actions(policy, reference, "policy", "reference")
        check_not_shared(policy, reference)
    scorer = as_scorer(scorer, task.gold_reward)
    if config.ppo.advantage == "gae" and policy.value_head is None:
        policy.add_value_head()
    reference = frozen_reference(policy) if reference is None else reference
    check_not_shared(policy, reference)
    reward = KLPenalisedReward(scorer, reference, config.beta)
    source = ResponseSource(policy, task, config.n_prompts, config.group_size, config.seed)
    value_fn = policy if config.ppo.advantage == "gae" else None
    ppo = PPO(policy, value_fn, config.ppo)

    def record(stats: dict[str, Any]) -> bool | None:
        stats.update(reward.last_stats)
        return callback(stats) if callback is not None else None

    return ppo.train(source, config.total_tokens, reward_fn=reward, callback=record, progress=config.progress)
