"""Rollouts: run a policy in a gymnasium vector env and return a TrajectoryBatch.

One function, ``rollout``, serves every step-wise world: a ``TabularVectorEnv`` (state ids),
a ``gymnasium.make_vec("CartPole-v1")`` (feature vectors), any vector env whose single
observation space is Discrete or a flat Box. It collects whole episodes, padding them to
the longest, and keeps the reward of an MDP\\R out of the learner's fields.
``collect_fragments`` is its on-policy counterpart for actor-critic methods (PPO): a fixed
number of steps per sub-env, episodes cut anywhere, with values and true next observations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.policies import Policy, action_count

__all__ = ["rollout", "episode_returns", "collect_fragments", "FragmentState", "check_action_space", "with_reward"]


def _obs_tensor(obs: np.ndarray, space: gym.Space) -> torch.Tensor:
    if isinstance(space, gym.spaces.Discrete):
        return torch.as_tensor(np.asarray(obs), dtype=torch.long)
    return torch.as_tensor(np.asarray(obs), dtype=torch.float32)


def rollout(
    envs: VectorEnv,
    policy: Policy,
    n_episodes: int,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    deterministic: bool = False,
    max_steps: int = 100_000,
) -> TrajectoryBatch:
    """Run ``policy`` in ``envs`` until ``n_episodes`` whole episodes are collected.

    Each of the N sub-envs contributes ceil(n_episodes / N) episodes, its first ones, so the
    batch is not biased towards short episodes; extras are dropped from the last sub-envs.

    Args:
        envs: a gymnasium vector env with NEXT_STEP or SAME_STEP autoreset.
        policy: anything with ``sample(obs, generator, deterministic)`` (see :mod:`minirl.policies`).
        n_episodes: number of episodes to return (>= 1).
        seed: passed to ``envs.reset(seed=...)``; also seeds the action sampler if no
            ``generator`` is given, so one seed fixes the whole rollout.
        max_steps: safety limit on vector steps (an episode that never ends raises).
    Returns:
        A TrajectoryBatch with obs (B, T[, d]), actions (B, T), mask, log_probs of the sampling
        policy, ``terminated``, ``rewards`` (unless the env hides them) and, for an MDP\\R,
        ``info["gold_reward"]`` (B, T) for evaluators only.
    """
    n_episodes = check_int(n_episodes, "n_episodes", 1)
    max_steps = check_int(max_steps, "max_steps", 1)
    if seed is not None:
        seed = check_seed(seed)
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        raise ValueError(f"envs: autoreset mode must be NEXT_STEP or SAME_STEP, got {mode}")
    check_action_space(envs, policy)
    if generator is None:
        generator = torch.Generator().manual_seed(seed if seed is not None else 0)
    N = envs.num_envs
    quota = math.ceil(n_episodes / N)
    space = envs.single_observation_space

    obs, _ = envs.reset(seed=seed)
    # Step buffers, one row per vector step: (K, N, ...). Episodes are cut out afterwards.
    buf: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "logp", "rew", "gold", "term", "done", "valid")}
    skip = np.zeros(N, dtype=bool)  # NEXT_STEP autoreset: the step after a done only resets
    finished = np.zeros(N, dtype=np.int64)
    hidden = False
    for _ in range(max_steps):
        if np.all(finished >= quota):
            break
        actions, logps = policy.sample(_obs_tensor(obs, space), generator=generator, deterministic=deterministic)
        actions = actions.cpu().numpy()
        next_obs, rewards, terminated, truncated, info = envs.step(actions)
        hidden = hidden or bool(np.any(info.get("reward_hidden", False)))
        done = np.asarray(terminated) | np.asarray(truncated)
        valid = ~skip
        gold = info.get("gold_reward", np.full(N, np.nan))
        for key, value in (("obs", obs), ("act", actions), ("logp", logps.cpu().numpy()), ("rew", rewards),
                           ("gold", gold), ("term", terminated), ("done", done), ("valid", valid)):
            buf[key].append(np.asarray(value).copy())
        finished += done & valid
        skip = done & valid if mode == AutoresetMode.NEXT_STEP else np.zeros(N, dtype=bool)
        obs = next_obs
    else:
        raise RuntimeError(f"max_steps: {max_steps} vector steps were not enough to finish the episodes")
    data = {k: np.stack(v) for k, v in buf.items()}  # (K, N, ...)

    # Cut each sub-env's column into episodes at its done flags and keep its first `quota`;
    # episode e of sub-env i becomes row b = i * quota + e. All vectorised: (K, N) index arrays.
    valid, ended = data["valid"], data["done"] & data["valid"]
    episode = np.cumsum(ended, axis=0) - ended  # (K, N) which episode of its column a step is in
    keep = valid & (episode < quota)
    rank = np.cumsum(keep, axis=0) - 1  # (K, N) index of the step among its column's kept steps
    row = np.arange(N)[None, :] * quota + episode  # (K, N)
    lengths = np.bincount(row[keep], minlength=N * quota)  # (N * quota,)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) - np.repeat(np.cumsum(
        lengths.reshape(N, quota).sum(1)) - lengths.reshape(N, quota).sum(1), quota)
    k_idx, i_idx = np.nonzero(keep)
    b_idx = row[k_idx, i_idx]
    t_idx = rank[k_idx, i_idx] - starts[b_idx]  # position within the episode
    sel = b_idx < n_episodes
    k_idx, i_idx, b_idx, t_idx = k_idx[sel], i_idx[sel], b_idx[sel], t_idx[sel]
    B, T = n_episodes, int(lengths[:n_episodes].max())
    out = {k: np.zeros((B, T, *data[k].shape[2:]), dtype=data[k].dtype) for k in ("obs", "act", "logp", "rew", "gold", "term")}
    out["gold"][:] = np.nan
    for k in out:
        out[k][b_idx, t_idx] = data[k][k_idx, i_idx]
    mask = np.zeros((B, T), dtype=bool)
    mask[b_idx, t_idx] = True
    gold = out["gold"]
    info_out: dict[str, Any] = {}
    if not np.all(np.isnan(gold[mask])):
        info_out["gold_reward"] = torch.as_tensor(np.nan_to_num(gold), dtype=torch.float32)
    return TrajectoryBatch(
        obs=_obs_tensor(out["obs"], space),
        actions=torch.as_tensor(out["act"]),
        mask=torch.as_tensor(mask),
        rewards=None if hidden else torch.as_tensor(out["rew"], dtype=torch.float32),
        log_probs=torch.as_tensor(out["logp"], dtype=torch.float32),
        terminated=torch.as_tensor(out["term"]),
        info=info_out,
    )


def episode_returns(batch: TrajectoryBatch, key: str | None = None) -> torch.Tensor:
    """Undiscounted return of each trajectory, (B,): from ``batch.rewards`` or ``batch.info[key]``."""
    r = batch.rewards if key is None else batch.info.get(key)
    if r is None:
        raise ValueError(f"batch: has no {'rewards' if key is None else repr(key)} to sum")
    return batch.masked_sum(r)


def with_reward(batch: TrajectoryBatch, reward_fn: Callable[[TrajectoryBatch], torch.Tensor]) -> TrajectoryBatch:
    """``batch`` with ``rewards = reward_fn(batch)``: the learner's reward (a discriminator's, a reward
    model's with a KL penalty, a rescaled env reward). It must be (B, T); it is detached, cast to
    float32 and set to 0 on padding."""
    with torch.no_grad():
        rewards = reward_fn(batch)
    if not isinstance(rewards, torch.Tensor) or tuple(rewards.shape) != tuple(batch.mask.shape):
        got = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"reward_fn: must return (B, T) = {tuple(batch.mask.shape)}, got {got}")
    mask = batch.mask.to(rewards.device)
    return batch.replace(rewards=torch.where(mask, rewards.detach().float(), torch.zeros((), device=rewards.device)))


# ----------------------------------------------------------------------------
# Fixed-length fragments for on-policy actor-critic methods (PPO)
# ----------------------------------------------------------------------------

@dataclass
class FragmentState:
    """Where :func:`collect_fragments` stopped; the next call continues from here.

    Attributes:
        obs: (N, ...) the current observation of each sub-env.
        skip: (N,) True where the sub-env's next step only resets it (NEXT_STEP autoreset).
        running_return: (N,) env (or gold) return of each sub-env's unfinished episode so far.
        finished_returns: gold (else env) returns of the episodes that ended during the last call,
            for logging only (never batch data).
    """

    obs: np.ndarray
    skip: np.ndarray
    running_return: np.ndarray
    finished_returns: list[float] = field(default_factory=list)


def check_action_space(envs: VectorEnv, policy: Policy) -> None:
    """Refuse a discrete policy in a continuous action space and vice versa, and a discrete policy whose
    action count differs from the env's Discrete(n) (a 6-action policy would send actions 4 and 5 to a
    4-action env, or never take an action that exists); ValueError on ``policy``. A mixture (DAgger's
    roll-in) is checked through both of its policies."""
    from minirl.policies import GaussianPolicy, MixturePolicy

    if isinstance(policy, MixturePolicy):
        check_action_space(envs, policy.expert)
        check_action_space(envs, policy.learner)
        return
    space = envs.single_action_space
    n_actions = action_count(policy)
    if n_actions is not None:
        if not isinstance(space, gym.spaces.Discrete):
            raise ValueError(f"policy: a categorical policy cannot act in the action space {space}")
        if n_actions != int(space.n):
            raise ValueError(f"policy: has {n_actions} actions but the env's action space is {space} "
                             f"({int(space.n)} actions)")
    if isinstance(policy, GaussianPolicy):
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(f"policy: a Gaussian policy needs a Box action space, got {space}")
        if space.shape != (policy.act_dim,):
            raise ValueError(f"policy: act_dim = {policy.act_dim} but the env's actions have shape {space.shape}")


def collect_fragments(
    envs: VectorEnv,
    policy: Policy,
    value_fn: Any,
    n_steps: int,
    state: FragmentState | None = None,
    generator: torch.Generator | None = None,
    reward_fn: Callable[[TrajectoryBatch], torch.Tensor] | None = None,
    seed: int | None = None,
) -> tuple[TrajectoryBatch, FragmentState]:
    """Step ``envs`` ``n_steps`` times with ``policy``: one fragment per sub-env, for PPO.

    Unlike :func:`rollout`, fragments do not follow episodes: row i is sub-env i's last
    ``n_steps`` vector steps, and an episode may end (and the next begin) anywhere in a row;
    ``batch.episode_end`` marks where. Under NEXT_STEP autoreset the vector step after an
    episode's end only resets that sub-env: it is not a transition, so it stays in place with
    ``mask`` False (the only masked steps). Continuous actions are clipped to the action space
    when sent to the env; the batch keeps the sampled (unclipped) ones, whose log-probs we know.

    Args:
        envs: a gymnasium vector env (NEXT_STEP or SAME_STEP autoreset).
        policy: samples actions; ``value_fn``: a :class:`~minirl.policies.ValueFunction`.
        state: where the previous call stopped; None resets ``envs`` with ``seed``.
        reward_fn: optional ``reward_fn(batch) -> (B, T)``, the learner's reward in place of the
            env's (:func:`with_reward`).
    Returns:
        (batch, state). The batch (B = num_envs, T = n_steps) has obs, actions, mask, log_probs,
        values V(s_t), terminated, truncated, ``next_obs`` (B, T, ...) the true s_{t+1} (the final
        observation at an episode's end, not the reset one), ``next_values`` (B, T) V(s_{t+1}), 0
        where terminated (bootstrapped from the final observation where truncated), ``rewards`` the
        env's (None if the env hides them, an MDP\\R, and no ``reward_fn`` is given) and, in
        ``info``, ``gold_reward`` where the env provides it. ``state.finished_returns`` holds the
        gold (else env) returns of the episodes completed in this call.
    """
    n_steps = check_int(n_steps, "n_steps", 1)
    if seed is not None:
        seed = check_seed(seed)
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        raise ValueError(f"envs: autoreset mode must be NEXT_STEP or SAME_STEP, got {mode}")
    check_action_space(envs, policy)
    N, obs_space, act_space = envs.num_envs, envs.single_observation_space, envs.single_action_space
    if state is None:
        obs, _ = envs.reset(seed=seed)
        state = FragmentState(obs, np.zeros(N, dtype=bool), np.zeros(N))
    obs, skip, running = state.obs, state.skip.copy(), state.running_return.copy()
    buf: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "logp", "rew", "gold", "term", "trunc",
                                                        "valid", "next")}
    hidden, has_gold, finished = False, False, []
    for _ in range(n_steps):
        actions, logps = policy.sample(_obs_tensor(obs, obs_space), generator=generator)
        actions = actions.cpu().numpy()
        env_actions = np.clip(actions, act_space.low, act_space.high) if isinstance(act_space, gym.spaces.Box) \
            else actions
        next_obs, rewards, terminated, truncated, info = envs.step(env_actions)
        valid = ~skip
        done = (np.asarray(terminated) | np.asarray(truncated)) & valid
        true_next = np.array(next_obs, copy=True)  # (N, ...)
        if mode == AutoresetMode.SAME_STEP and "final_obs" in info:
            for i in np.flatnonzero(done):
                true_next[i] = info["final_obs"][i]
        hidden = hidden or bool(np.any(info.get("reward_hidden", False)))
        has_gold = has_gold or "gold_reward" in info
        gold = np.asarray(info.get("gold_reward", np.zeros(N)), dtype=np.float64)
        running += np.where(valid, gold if "gold_reward" in info else rewards, 0.0)
        finished += running[done].tolist()
        running[done] = 0.0
        for key, value in (("obs", obs), ("act", actions), ("logp", logps.cpu().numpy()), ("rew", rewards),
                           ("gold", gold), ("term", np.asarray(terminated) & valid),
                           ("trunc", np.asarray(truncated) & valid), ("valid", valid), ("next", true_next)):
            buf[key].append(np.asarray(value).copy())
        skip = done if mode == AutoresetMode.NEXT_STEP else np.zeros(N, dtype=bool)
        obs = next_obs
    data = {k: np.swapaxes(np.stack(v), 0, 1) for k, v in buf.items()}  # (T, N, ...) -> (N, T, ...)

    mask = torch.as_tensor(data["valid"])  # (B, T)
    terminated = torch.as_tensor(data["term"])
    action_dtype = torch.float32 if isinstance(act_space, gym.spaces.Box) else torch.long
    zero = torch.zeros(())
    batch = TrajectoryBatch(obs=_obs_tensor(data["obs"], obs_space),
                            actions=torch.as_tensor(data["act"], dtype=action_dtype), mask=mask,
                            log_probs=torch.as_tensor(data["logp"], dtype=torch.float32),
                            terminated=terminated, truncated=torch.as_tensor(data["trunc"]),
                            next_obs=_obs_tensor(data["next"], obs_space),  # (B, T, ...)
                            rewards=None if hidden else torch.where(mask, torch.as_tensor(data["rew"],
                                                                                          dtype=torch.float32), zero),
                            info={"gold_reward": torch.as_tensor(data["gold"], dtype=torch.float32)} if has_gold
                            else {})
    with torch.no_grad():
        values = value_fn.values(batch)  # (B, T)
        next_values = value_fn.value(batch.next_obs.flatten(0, 1)).view(mask.shape)  # V(s_{t+1}), (B, T)
    batch = batch.replace(values=values, next_values=torch.where(mask & ~terminated, next_values, zero))  # absorbing: V = 0
    if reward_fn is not None:
        batch = with_reward(batch, reward_fn)
    return batch, FragmentState(obs, skip, running, finished)
