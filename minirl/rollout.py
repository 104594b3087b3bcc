"""Rollouts: run a policy in a gymnasium vector env and return a TrajectoryBatch.

One function, ``rollout``, serves every step-wise world: a ``TabularVectorEnv`` (state ids),
a ``gymnasium.make_vec("CartPole-v1")`` (feature vectors), any vector env whose single
observation space is Discrete or a flat Box. It collects whole episodes, padding them to
the longest, and keeps the reward of an MDP\\R out of the learner's fields.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from minirl.data import TrajectoryBatch
from minirl.policies import Policy

__all__ = ["rollout", "episode_returns"]


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
    if n_episodes < 1:
        raise ValueError(f"n_episodes: must be >= 1, got {n_episodes}")
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        raise ValueError(f"envs: autoreset mode must be NEXT_STEP or SAME_STEP, got {mode}")
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
