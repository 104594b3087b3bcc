"""Proximal Policy Optimisation with GAE (Schulman et al. 2017, 2016; docs/equations.md §6).

Symbols, per step t of a masked (B, T) batch (row b, column t):
    delta_t = r_t + gamma V(s_{t+1}) - V(s_t)                 TD error; V(s_{t+1}) = 0 if t terminated
    A_t     = delta_t + gamma lambda (1 - end_t) A_{t+1}      GAE(gamma, lambda); end_t cuts episodes
    R_t     = A_t + V(s_t)                                    the value target
    rho_t   = pi(a_t|s_t) / pi_old(a_t|s_t)                   probability ratio to the sampling policy
    L_clip  = -min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)
    L_V     = 1/2 (V(s_t) - R_t)^2, optionally clipped around the old value
    L       = mean_t [L_clip + c_V L_V - c_H H(pi(.|s_t))]

The losses are pure functions of (B, T) tensors, so the same code trains a gymnasium policy on fragments
(rows = sub-envs, several episodes per row) and a language model on sequences (one episode per row, padding
masked): :meth:`PPO.update` needs log_probs, values, rewards, ``next_values`` and where episodes end.
PPO, REINFORCE, RLOO and GRPO differ only in how A_t is estimated (``PPOConfig.advantage``):
:func:`gae` with a value function, or without one a Monte-Carlo estimate from
:mod:`minirl.algos.group_advantages` -- the reward-to-go of per-step rewards, or one score per
sequence (its summed reward) made group-relative and given to every step of the sequence.

Batches come from a *batch source* (:mod:`minirl.sources`: a vector env's fragments, an LM's responses,
any callable); :meth:`PPO.train` is one loop over a source, a vector env wrapped into one at the door.
Under ``accelerate launch`` (docs/scale.md) :meth:`train` gathers the processes' own samples into one
batch on every process, and :meth:`update` gives each B / W rows of a minibatch, weighted by real tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from gymnasium.vector import VectorEnv
from torch import Tensor
from tqdm.auto import tqdm

from minirl import parallel
from minirl.algos.group_advantages import ESTIMATORS, reward_to_go, sequence_advantages
from minirl.checks import check_int, check_number, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Policy, ValueFunction
from minirl.rollout import with_reward
from minirl.sources import BatchSource, Budget, as_source

__all__ = ["gae", "sequence_advantages", "clipped_surrogate", "clipped_value_loss", "ppo_loss", "PPOConfig", "PPO",
           "ADVANTAGES", "BatchSource"]

ADVANTAGES = ("gae", "reward_to_go") + ESTIMATORS


def gae(rewards: Tensor, values: Tensor, next_values: Tensor, episode_end: Tensor, mask: Tensor,
        gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimates and value targets (docs/equations.md §6, PPO-RLHF's GAE line).

    Args (all (B, T)):
        rewards: r_t. values: V(s_t). next_values: V(s_{t+1}) -- 0 where step t terminated,
            V(final observation) where it was truncated, else V of the next step's state.
        episode_end: True where an episode ended at step t (terminated or truncated): A_{t+1}
            belongs to another episode and is not added.
        mask: False on padded steps; they get A = 0, so they add nothing to the step before.
    Returns:
        (advantages, returns), (B, T) each: A_t and R_t = A_t + V(s_t); both 0 on padding.
    """
    # BEGIN SOLUTION
    m = mask.to(values.dtype)
    not_end = 1.0 - episode_end.to(values.dtype)
    delta = (rewards + gamma * next_values - values) * m  # (B, T); docs/equations.md §6, GAE
    advantages = torch.zeros_like(delta)
    next_advantage = torch.zeros_like(delta[:, 0])  # A_{t+1}, (B,)
    for t in reversed(range(delta.shape[1])):
        next_advantage = delta[:, t] + gamma * lam * not_end[:, t] * next_advantage
        next_advantage = next_advantage * m[:, t]
        advantages[:, t] = next_advantage
    returns = (advantages + values) * m
    # END SOLUTION
    return advantages, returns


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip_eps: float) -> Tensor:
    """Per-step clipped policy loss -min(rho A, clip(rho, 1 - eps, 1 + eps) A) (Schulman et al. 2017 eq. 7)."""
    # BEGIN SOLUTION
    return -torch.min(ratio * advantages, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages)  # docs/equations.md §6
    # END SOLUTION


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip_eps: float | None) -> Tensor:
    """Per-step value loss 1/2 (V - R)^2; with ``clip_eps`` the pessimistic max with the clipped V.

    Clipped: 1/2 max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2), as in OpenAI baselines'
    PPO2 (not in the PPO paper; Andrychowicz et al. 2021 find it rarely helps, hence optional).
    """
    # BEGIN SOLUTION
    loss = (values - returns) ** 2  # docs/equations.md §6, L_V
    if clip_eps is not None:
        clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
        loss = torch.max(loss, (clipped - returns) ** 2)
    return 0.5 * loss
    # END SOLUTION


def ppo_loss(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, values: Tensor, old_values: Tensor,
             returns: Tensor, entropy: Tensor, mask: Tensor, clip_eps: float = 0.2, clip_value: float | None = None,
             vf_coef: float = 0.5, ent_coef: float = 0.0) -> tuple[Tensor, dict[str, float]]:
    """L = mean over real steps of [L_clip + vf_coef L_V - ent_coef H] (module docstring), all inputs (B, T).

    Returns:
        (loss, stats): stats has 'loss/policy', 'loss/value', 'loss/entropy' (the mean entropy),
        'stats/approx_kl' (mean of (rho - 1) - log rho, an unbiased, non-negative estimate of
        KL(pi_old || pi)) and 'stats/clip_fraction' (share of steps with |rho - 1| > eps).
    """
    # a policy on an accelerator returns its log-probs there; the batch's tensors follow them
    old_log_probs, advantages, values, old_values, returns, entropy, mask = (
        x.to(log_probs.device) for x in (old_log_probs, advantages, values, old_values, returns, entropy, mask))
    m = mask.to(log_probs.dtype)
    n = m.sum().clamp_min(1.0)

    def mean(x: Tensor) -> Tensor:
        return (x * m).sum() / n

    # BEGIN SOLUTION
    log_ratio = torch.where(mask, log_probs - old_log_probs, torch.zeros_like(log_probs))  # (B, T)
    ratio = log_ratio.exp()
    policy_loss = mean(clipped_surrogate(ratio, advantages, clip_eps))
    value_loss = mean(clipped_value_loss(values, old_values, returns, clip_value))
    mean_entropy = mean(entropy)
    loss = policy_loss + vf_coef * value_loss - ent_coef * mean_entropy  # docs/equations.md §6
    # END SOLUTION
    with torch.no_grad():
        stats = {"loss/policy": policy_loss.item(), "loss/value": value_loss.item(),
                 "loss/entropy": mean_entropy.item(),
                 "stats/approx_kl": mean((ratio - 1) - log_ratio).item(),
                 "stats/clip_fraction": mean(((ratio - 1).abs() > clip_eps).to(m.dtype)).item()}
    return loss, stats


@dataclass(frozen=True)
class PPOConfig:
    """Hyperparameters of PPO; defaults follow CleanRL's ``ppo.py``."""

    n_steps: int = 128
    """Vector steps collected per sub-env between updates (the fragment length T)."""
    n_epochs: int = 4
    """Passes over each collected batch."""
    n_minibatches: int = 4
    """Minibatches per epoch (over real steps, or over rows for a batch of context observations)."""
    lr: float = 3e-4
    """Adam learning rate (Adam eps = 1e-5, as in CleanRL)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over ``train``'s iterations."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda: 0 = one-step TD advantages, 1 = Monte-Carlo returns minus V."""
    clip_eps: float = 0.2
    """Ratio clipping epsilon of the surrogate."""
    clip_value: float | None = None
    """Value clipping around the old value (None = unclipped squared error)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float | None = 0.5
    """Global gradient-norm clipping (None = off)."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    target_kl: float | None = None
    """Stop an update's epochs early once the mean approx KL of an epoch exceeds this."""
    advantage: str = "gae"
    """How A_t is estimated: "gae" (needs a value function), "reward_to_go" (G_t at ``gamma``) or a sequence
    estimator, "reinforce", "rloo" or "grpo" (needs ``batch.group_size``: consecutive rows share a prompt)."""
    seed: int = 0
    """Seeds the env reset, the action sampler and the minibatch shuffling."""

    def __post_init__(self) -> None:
        if not isinstance(self.advantage, str) or self.advantage not in ADVANTAGES:
            raise ValueError(f"advantage: unknown estimator {self.advantage!r}; valid: {list(ADVANTAGES)}")
        for name in ("n_steps", "n_epochs", "n_minibatches"):
            check_int(getattr(self, name), name, 1)
        check_number(self.lr, "lr", 0.0, strict_minimum=True)
        check_number(self.gamma, "gamma", 0.0, 1.0)
        check_number(self.gae_lambda, "gae_lambda", 0.0, 1.0)
        check_number(self.ent_coef, "ent_coef", 0.0)
        check_number(self.vf_coef, "vf_coef", 0.0)
        for name in ("clip_eps", "clip_value", "max_grad_norm", "target_kl"):  # > 0; all but clip_eps may be None
            value = getattr(self, name)
            if value is not None or name == "clip_eps":
                check_number(value, name, 0.0, strict_minimum=True)
        check_seed(self.seed)


def _masked_standardise(x: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(x.dtype)
    n = m.sum().clamp_min(1.0)
    mean = (x * m).sum() / n
    std = (((x - mean) * m) ** 2).sum().div(n).sqrt()
    return (x - mean) / (std + 1e-8) * m


class PPO:
    """PPO for any :class:`Policy` and :class:`ValueFunction` (torch modules); see the module docstring.

    ``update`` runs the epochs of clipped updates on any batch; ``train`` alternates drawing a batch
    from a source and ``update``. One Adam optimiser covers the (deduplicated) parameters of policy
    and value function, so a shared trunk is fine.
    """

    def __init__(self, policy: Policy, value_fn: ValueFunction | None, config: PPOConfig = PPOConfig(),
                 regularizer: Callable[[TrajectoryBatch, Tensor, Tensor], Tensor] | None = None):
        if value_fn is None and config.advantage == "gae":
            raise ValueError("value_fn: GAE needs a value function (or choose a Monte-Carlo PPOConfig.advantage)")
        self.policy, self.value_fn, self.config = policy, value_fn, config
        self.regularizer = regularizer  # f(minibatch, log pi, log pi_old) -> a loss term, e.g. kl_penalty.KLLoss
        params = {id(p): p for module in (policy, value_fn) if module is not None
                  for p in module.parameters() if p.requires_grad}  # type: ignore[attr-defined]
        if not params:
            raise ValueError("policy: policy and value function have no trainable parameters")
        self.params = list(params.values())
        parallel.broadcast_parameters(self.params)  # W processes start equal (one process: nothing)
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)  # minibatches: the same on every process
        self.sampler = self.generator if parallel.world_size() == 1 else torch.Generator().manual_seed(
            parallel.process_seed(config.seed))  # rollouts: this process's own stream under accelerate launch
        self._source: BatchSource | None = None
        self._envs: Any = None

    def source(self, envs: VectorEnv | BatchSource | Callable[[], TrajectoryBatch]) -> BatchSource:
        """``envs`` as a batch source: a vector env becomes fragments of ``config.n_steps`` steps acted by
        this policy with this PPO's generator (the first batch resets it with ``config.seed``; the same
        env again continues its episodes); a source stays itself; a plain callable is wrapped."""
        if envs is not self._envs or self._source is None:
            self._source = as_source(envs, self.policy, self.value_fn, self.config.n_steps, self.sampler,
                                     parallel.process_seed(self.config.seed))
            self._envs = envs
        return self._source

    def collect(self, envs: VectorEnv | BatchSource, reward_fn: Callable[[TrajectoryBatch], Tensor] | None = None
                ) -> TrajectoryBatch:
        """The next batch of ``envs``'s source (:meth:`source`), with ``reward_fn``'s rewards if given."""
        batch = self.source(envs)()
        return batch if reward_fn is None else with_reward(batch, reward_fn)

    def update(self, batch: TrajectoryBatch) -> dict[str, float]:
        """Epochs of minibatch PPO steps on ``batch`` (docs/equations.md §6); returns mean stats.

        ``batch`` needs rewards and log_probs; for GAE also values and next_values (episodes end
        at ``batch.episode_end``), for a Monte-Carlo estimator ``group_size``. Step-wise
        observations (B, T, ...) are flattened to their real steps and shuffled; context
        observations (a language model's prompt + response) are minibatched by rows.
        """
        cfg = self.config
        if not isinstance(batch, TrajectoryBatch):
            raise ValueError(f"batch: must be a TrajectoryBatch, got {type(batch).__name__}")
        if batch.rewards is None or batch.log_probs is None:
            raise ValueError("batch: PPO needs rewards (an MDP\\R hides them: pass a reward_fn) and log_probs")
        if cfg.advantage == "gae":  # every field is finite by construction (TrajectoryBatch)
            if batch.values is None or batch.next_values is None:
                raise ValueError("batch: GAE needs values and next_values")
            with torch.no_grad():
                advantages, returns = gae(batch.rewards, batch.values, batch.next_values, batch.episode_end,
                                          batch.mask, cfg.gamma, cfg.gae_lambda)  # (B, T) each
        else:  # Monte-Carlo: no value function is fitted, so its loss is 0
            if batch.group_size is None and cfg.advantage != "reward_to_go":
                raise ValueError(f"batch: advantage {cfg.advantage!r} needs group_size (responses per prompt)")
            advantages = (reward_to_go(batch.rewards, batch.episode_end, batch.mask, cfg.gamma)
                          if cfg.advantage == "reward_to_go"
                          else sequence_advantages(batch.rewards, batch.mask, batch.group_size, cfg.advantage))
            returns = torch.zeros_like(advantages)
        batch = batch if batch.values is not None else batch.replace(values=torch.zeros(batch.mask.shape))
        per_step = {"adv": advantages, "ret": returns, "logp": batch.log_probs, "v": batch.values}
        if batch.obs.shape[1] == batch.horizon:  # step-wise obs: every real step becomes a row of length 1
            m = batch.mask
            rows = TrajectoryBatch(obs=batch.obs[m].unsqueeze(1), actions=batch.actions[m].unsqueeze(1),
                                   mask=torch.ones(int(m.sum()), 1, dtype=torch.bool))  # (N, 1, ...)
            per_step = {k: v[m].unsqueeze(1) for k, v in per_step.items()}  # (N, 1)
        else:
            rows = batch
        sums: dict[str, float] = {}
        n_updates = 0
        fit_value = self.value_fn is not None and cfg.advantage == "gae"
        for _ in range(cfg.n_epochs):
            epoch_kl = []
            for index in parallel.minibatches(rows.batch_size, cfg.n_minibatches, self.generator, "n_minibatches"):
                mine, share = parallel.token_shard(rows.mask[index], "n_minibatches")  # this process's rows
                adv = per_step["adv"][index]  # (B_mb, T): standardised over the whole minibatch, then sharded
                adv = (_masked_standardise(adv, rows.mask[index]) if cfg.normalize_advantages else adv)[mine]
                mb, d = rows[index[mine]], {k: v[index[mine]] for k, v in per_step.items()}
                values = self.value_fn.values(mb) if fit_value else d["v"]
                logp = self.policy.log_prob(mb)
                loss, stats = ppo_loss(logp, d["logp"], adv, values, d["v"], d["ret"], self.policy.entropy(mb),
                                       mb.mask, cfg.clip_eps, cfg.clip_value, cfg.vf_coef if fit_value else 0.0,
                                       cfg.ent_coef)  # docs/equations.md §6; + a KL in the loss, §11
                loss = loss if self.regularizer is None else loss + self.regularizer(mb, logp, d["logp"])
                parallel.synced_step(self.optimizer, self.params, loss, share, cfg.max_grad_norm)
                stats = parallel.reduce_metric(stats, share)  # global token means (one process: as is)
                sums = {k: sums.get(k, 0.0) + v for k, v in stats.items()}
                n_updates += 1
                epoch_kl.append(stats["stats/approx_kl"])
            if cfg.target_kl is not None and sum(epoch_kl) / len(epoch_kl) > cfg.target_kl:
                break
        out = {k: v / n_updates for k, v in sums.items()}
        m = batch.mask
        var_r = returns[m].var() if m.sum() > 1 and cfg.advantage == "gae" else torch.tensor(0.0)
        out["stats/explained_variance"] = float("nan") if var_r == 0 else \
            (1 - (returns[m] - batch.values[m]).var() / var_r).item()
        return out

    def train(self, envs: VectorEnv | BatchSource | Callable[[], TrajectoryBatch], total_steps: int,
              reward_fn: Callable[[TrajectoryBatch], Tensor] | None = None,
              callback: Callable[[dict[str, Any]], bool | None] | None = None, progress: bool = False
              ) -> list[dict[str, Any]]:
        """Alternate drawing a batch from the source and ``update`` until the budget is spent.

        Args:
            envs: a batch source (:mod:`minirl.sources`; e.g. sampled LM responses, whose real steps --
                tokens -- count against ``total_steps``), a plain callable returning batches, or a vector
                env (:meth:`source`; its fragments set the iterations, ceil(total_steps / (n_steps N W))).
            reward_fn: the learner's reward, ``f(batch) -> (B, T)`` (:func:`minirl.rollout.with_reward`),
                on the gathered batch; without it the batch's own rewards are used.
            callback: called with each iteration's record; returning True stops training.
        Returns:
            history: one record per iteration: 'env_steps' (real transitions so far), 'episode_return'
            (mean gold/env return of this process's episodes completed in this iteration, NaN if none),
            'episodes', 'wall_s', 'lr', and :meth:`update`'s losses and stats.
        """
        total_steps = check_int(total_steps, "total_steps", 1)
        source = self.source(envs)
        spb = source.steps_per_batch  # per process; a gathered batch holds W processes' shares
        budget = Budget(total_steps, None if spb is None else spb * parallel.world_size())
        history: list[dict[str, Any]] = []
        env_steps, start = 0, time.perf_counter()
        bar = tqdm(total=budget.total, desc="PPO", disable=not progress)
        while not budget.spent:
            lr = self.config.lr * (1.0 - budget.fraction) if self.config.anneal_lr else self.config.lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = parallel.gather_batch(source())  # every process's share (one process: its batch)
            batch = batch if reward_fn is None else with_reward(batch, reward_fn)
            stats = self.update(batch)
            env_steps += batch.n_steps
            bar.update(budget.spend(batch))
            finished = source.episode_returns
            record = {"env_steps": env_steps, "episode_return": sum(finished) / len(finished) if len(finished)
                      else float("nan"), "episodes": len(finished), "wall_s": time.perf_counter() - start,
                      "lr": lr, **stats}
            history.append(record)
            if callback is not None and callback(record) is True:
                break
        bar.close()
        return history
