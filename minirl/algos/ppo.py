"""Proximal Policy Optimisation with GAE (Schulman et al. 2017, 2016; docs/equations.md §6).

Symbols, per step t of a masked (B, T) batch (row b, column t):
    delta_t = r_t + gamma V(s_{t+1}) - V(s_t)                 TD error; V(s_{t+1}) = 0 if t terminated
    A_t     = delta_t + gamma lambda (1 - end_t) A_{t+1}      GAE(gamma, lambda); end_t cuts episodes
    R_t     = A_t + V(s_t)                                    the value target
    rho_t   = pi(a_t|s_t) / pi_old(a_t|s_t)                   probability ratio to the sampling policy
    L_clip  = -min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)
    L_V     = 1/2 (V(s_t) - R_t)^2, optionally clipped around the old value
    L       = mean_t [L_clip + c_V L_V - c_H H(pi(.|s_t))]

The losses are pure functions of (B, T) tensors, so the same code trains a gymnasium policy
on fragments (rows = sub-envs, several episodes per row) and a language model on sequences
(one episode per row, padding masked): :meth:`PPO.update` needs only a batch with
log_probs, values, rewards, ``info["next_values"]`` and ``info["episode_end"]``.
PPO, REINFORCE, RLOO and GRPO differ only in how A_t is estimated (``PPOConfig.advantage``):
:func:`gae` with a value function, or one Monte-Carlo score per sequence (its summed reward,
gamma = 1) turned into a group-relative advantage by
:func:`minirl.algos.group_advantages.group_advantages` and given to every step of the sequence
-- then no value function is needed (``value_fn=None``).

Where batches come from: a gymnasium vector env (:meth:`PPO.collect`, fragments) or any
*batch source* -- a callable returning a fresh on-policy batch, e.g. a language model's
sampled responses (``llmtrack.rlhf``). :meth:`PPO.train` accepts either.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import torch
from gymnasium.vector import VectorEnv
from torch import Tensor
from tqdm.auto import tqdm

from minirl.algos.group_advantages import ESTIMATORS, group_advantages
from minirl.checks import check_finite, check_int, check_number, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Policy, ValueFunction
from minirl.rollout import FragmentState, collect_fragments

__all__ = ["gae", "sequence_advantages", "clipped_surrogate", "clipped_value_loss", "ppo_loss", "PPOConfig", "PPO",
           "ADVANTAGES", "BatchSource"]

ADVANTAGES = ("gae",) + ESTIMATORS
BatchSource = Callable[[], TrajectoryBatch]
"""A callable that samples a fresh on-policy batch (log_probs, mask, and values / next_values for GAE)."""


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
    delta = (rewards + gamma * next_values - values) * m  # (B, T)
    advantages = torch.zeros_like(delta)
    next_advantage = torch.zeros_like(delta[:, 0])  # A_{t+1}, (B,)
    for t in reversed(range(delta.shape[1])):
        next_advantage = delta[:, t] + gamma * lam * not_end[:, t] * next_advantage
        next_advantage = next_advantage * m[:, t]
        advantages[:, t] = next_advantage
    returns = (advantages + values) * m
    # END SOLUTION
    return advantages, returns


def sequence_advantages(rewards: Tensor, mask: Tensor, group_size: int, estimator: str) -> Tensor:
    """Monte-Carlo advantages for whole sequences: A_t = A_i for every step t of row i, (B, T).

    The score of row i is its undiscounted return sum_t r_t (a reward model's score at the last
    token plus any per-token KL penalty); rows come in consecutive groups of ``group_size``
    responses to one prompt, and ``estimator`` ("reinforce", "rloo", "grpo") turns the (P, G)
    scores into advantages (docs/equations.md §6, REINFORCE / RLOO / GRPO line).
    """
    B = rewards.shape[0]
    group_size = check_int(group_size, "group_size", 1)
    if B % group_size:
        raise ValueError(f"group_size: {B} rows do not split into groups of {group_size}")
    # summed in float64: GRPO divides by the group's std, which would blow float32 rounding up into
    # advantages of ~0.1 when a group's returns are equal (e.g. at the optimum)
    scores = (rewards.double() * mask).sum(1).reshape(B // group_size, group_size)
    per_row = group_advantages(scores, estimator).reshape(B, 1).to(rewards.dtype)
    return per_row * mask.to(rewards.dtype)


def clipped_surrogate(ratio: Tensor, advantages: Tensor, clip_eps: float) -> Tensor:
    """Per-step clipped policy loss -min(rho A, clip(rho, 1 - eps, 1 + eps) A) (Schulman et al. 2017 eq. 7)."""
    # BEGIN SOLUTION
    return -torch.min(ratio * advantages, ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages)
    # END SOLUTION


def clipped_value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip_eps: float | None) -> Tensor:
    """Per-step value loss 1/2 (V - R)^2; with ``clip_eps`` the pessimistic max with the clipped V.

    Clipped: 1/2 max((V - R)^2, (V_old + clip(V - V_old, -eps, eps) - R)^2), as in OpenAI baselines'
    PPO2 (not in the PPO paper; Andrychowicz et al. 2021 find it rarely helps, hence optional).
    """
    # BEGIN SOLUTION
    loss = (values - returns) ** 2
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
    old_log_probs, advantages, old_values, returns, mask = (x.to(log_probs.device) for x in
                                                            (old_log_probs, advantages, old_values, returns, mask))
    values, entropy = values.to(log_probs.device), entropy.to(log_probs.device)
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
    loss = policy_loss + vf_coef * value_loss - ent_coef * mean_entropy
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
    """How A_t is estimated: "gae" (needs a value function) or a Monte-Carlo sequence estimator,
    "reinforce", "rloo" or "grpo" (needs ``info["group_size"]``: consecutive rows share a prompt)."""
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

    ``collect`` gathers fragments from a vector env, ``update`` runs the epochs of clipped
    updates on any batch, ``train`` alternates the two. One Adam optimiser covers the
    (deduplicated) parameters of policy and value function, so a shared trunk is fine.
    """

    def __init__(self, policy: Policy, value_fn: ValueFunction | None, config: PPOConfig = PPOConfig()):
        if value_fn is None and config.advantage == "gae":
            raise ValueError("value_fn: GAE needs a value function (or choose a Monte-Carlo PPOConfig.advantage)")
        self.policy, self.value_fn, self.config = policy, value_fn, config
        params = {id(p): p for module in (policy, value_fn) if module is not None
                  for p in module.parameters() if p.requires_grad}  # type: ignore[attr-defined]
        if not params:
            raise ValueError("policy: policy and value function have no trainable parameters")
        self.params = list(params.values())
        self.optimizer = torch.optim.Adam(self.params, lr=config.lr, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)
        self._envs: VectorEnv | None = None
        self._state: FragmentState | None = None

    def collect(self, envs: VectorEnv, reward_fn: Callable[[TrajectoryBatch], Tensor] | None = None
                ) -> TrajectoryBatch:
        """``config.n_steps`` steps of every sub-env (:func:`minirl.rollout.collect_fragments`).

        The first call on an env resets it with ``config.seed``; later calls continue its episodes.
        """
        if self.value_fn is None:
            raise ValueError("value_fn: collecting env fragments needs a value function (for bootstrapping)")
        if envs is not self._envs:
            self._envs, self._state = envs, None
        batch, self._state = collect_fragments(envs, self.policy, self.value_fn, self.config.n_steps, self._state,
                                               self.generator, reward_fn, seed=self.config.seed)
        return batch

    def update(self, batch: TrajectoryBatch) -> dict[str, float]:
        """Epochs of minibatch PPO steps on ``batch`` (docs/equations.md §6); returns mean stats.

        ``batch`` needs rewards and log_probs; for GAE also values and ``info["next_values"]``
        (``info["episode_end"]`` defaults to ``terminated | info["truncated"]``), for a Monte-Carlo
        estimator ``info["group_size"]``. Step-wise observations (B, T, ...) are flattened to their
        real steps and shuffled; context observations (a language model's prompt + response) are
        minibatched by rows.
        """
        cfg = self.config
        if not isinstance(batch, TrajectoryBatch):
            raise ValueError(f"batch: must be a TrajectoryBatch, got {type(batch).__name__}")
        if batch.rewards is None or batch.log_probs is None:
            raise ValueError("batch: PPO needs rewards and log_probs")
        # rewards, log_probs and values are finite by construction (TrajectoryBatch); so must be the rest
        if cfg.advantage == "gae":
            if batch.values is None or "next_values" not in batch.info:
                raise ValueError("batch: GAE needs values and info['next_values']")
            check_finite(batch.info["next_values"], "next_values")
            episode_end = batch.info.get("episode_end")
            if episode_end is None:
                terminated = batch.terminated if batch.terminated is not None else torch.zeros_like(batch.mask)
                episode_end = terminated | batch.info.get("truncated", torch.zeros_like(batch.mask))
            with torch.no_grad():
                advantages, returns = gae(batch.rewards, batch.values, batch.info["next_values"], episode_end,
                                          batch.mask, cfg.gamma, cfg.gae_lambda)  # (B, T) each
        else:
            if "group_size" not in batch.info:
                raise ValueError(f"batch: advantage {cfg.advantage!r} needs info['group_size'] (responses per prompt)")
            advantages = sequence_advantages(batch.rewards, batch.mask, int(batch.info["group_size"]), cfg.advantage)
            returns = torch.zeros_like(advantages)  # no value function is fitted: its loss is 0
        if batch.values is None:
            batch = batch.replace(values=torch.zeros(batch.mask.shape))
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
        for _ in range(cfg.n_epochs):
            epoch_kl = []
            for index in torch.randperm(rows.batch_size, generator=self.generator).chunk(cfg.n_minibatches):
                mb, d = rows[index], {k: v[index] for k, v in per_step.items()}
                adv = _masked_standardise(d["adv"], mb.mask) if cfg.normalize_advantages else d["adv"]
                fit_value = self.value_fn is not None and cfg.advantage == "gae"
                values = self.value_fn.values(mb) if fit_value else d["v"]
                loss, stats = ppo_loss(self.policy.log_prob(mb), d["logp"], adv, values, d["v"], d["ret"],
                                       self.policy.entropy(mb), mb.mask, cfg.clip_eps, cfg.clip_value,
                                       cfg.vf_coef if fit_value else 0.0, cfg.ent_coef)
                self.optimizer.zero_grad()
                loss.backward()
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
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

    def train(self, envs: VectorEnv | BatchSource, total_steps: int,
              reward_fn: Callable[[TrajectoryBatch], Tensor] | None = None,
              callback: Callable[[dict[str, Any]], bool | None] | None = None, progress: bool = False
              ) -> list[dict[str, Any]]:
        """Alternate collecting and ``update`` until ``total_steps`` real steps have been collected.

        Args:
            envs: a vector env (``collect``'s fragments; all sub-envs' steps count) or a batch
                source (a callable returning a fresh on-policy batch, e.g. sampled LM responses;
                its real steps -- tokens -- count).
            reward_fn: the learner's reward, ``f(batch) -> (B, T)`` (see
                :func:`~minirl.rollout.collect_fragments`); a source's batch may instead carry rewards.
            callback: called with each iteration's record; returning True stops training.
        Returns:
            history: one record per iteration: 'env_steps' (real transitions so far),
            'episode_return' (mean gold/env return of the episodes completed in this iteration,
            NaN if none), 'episodes', 'wall_s', 'lr', and :meth:`update`'s losses and stats.
        """
        total_steps = check_int(total_steps, "total_steps", 1)
        cfg = self.config
        is_env = isinstance(envs, VectorEnv)
        if not is_env and not callable(envs):
            raise ValueError("envs: must be a gymnasium VectorEnv or a callable batch source")
        # A vector env collects a fixed number of steps per iteration; a source's batches vary
        # (responses end at [EOS]), so there the schedule follows the steps collected so far.
        n_iterations = math.ceil(total_steps / (cfg.n_steps * envs.num_envs)) if is_env else None
        history: list[dict[str, Any]] = []
        env_steps, start, i = 0, time.perf_counter(), 0
        bar = tqdm(total=n_iterations if is_env else total_steps, desc="PPO", disable=not progress)
        while (i < n_iterations) if is_env else (env_steps < total_steps):
            done = i / n_iterations if is_env else env_steps / total_steps
            lr = cfg.lr * (1.0 - done) if cfg.anneal_lr else cfg.lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if is_env:
                batch = self.collect(envs, reward_fn)
            else:
                batch = envs()
                if reward_fn is not None:
                    batch = batch.replace(rewards=reward_fn(batch))
            stats = self.update(batch)
            env_steps += batch.n_steps
            bar.update(1 if is_env else batch.n_steps)
            finished = batch.info.get("episode_returns", [])
            record = {"env_steps": env_steps, "episode_return": sum(finished) / len(finished) if len(finished)
                      else float("nan"), "episodes": len(finished), "wall_s": time.perf_counter() - start,
                      "lr": lr, **stats}
            history.append(record)
            i += 1
            if callback is not None and callback(record) is True:
                break
        bar.close()
        return history
