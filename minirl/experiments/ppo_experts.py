"""PPO experts for CartPole-v1 and Pendulum-v1: proof that :mod:`minirl.algos.ppo` works.

``train_cartpole_expert`` uses RL Zoo's CartPole hyperparameters (8 envs, 32 steps each,
20 epochs of one full-batch step, gamma 0.98, lambda 0.8, lr 1e-3 annealed); its default budget,
50k steps, is the smallest at which every seed tried reached the maximum return of 500.

``train_pendulum_expert`` uses gamma 0.9 (what a swing-up with a ~200-step episode needs) and
32 minibatches of 64 steps; its default 200k steps give a solved swing-up (a return near -140,
where the untrained policy scores about -1100). Neither expert normalises observations. For Pendulum the learner's reward is the env's reward times ``reward_scale``
(0.1: per-step costs lie in [-16.3, 0], so the value targets become of order 1-10 rather than
10-100, which the value MLP fits faster). The scale changes the value scale, not the optimal
policy, and is not part of the policy: evaluation uses the env's own return.

Both are deterministic for a seed on CPU: the seed fixes the initial weights, the env resets,
the action sampler and the minibatch order. Hand-written CartPole expert:
:class:`minirl.experts.CartPoleExpert`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import gymnasium as gym
import torch

from minirl.algos.ppo import PPO, PPOConfig
from minirl.policies import GaussianPolicy, MLPPolicy, Policy, ValueMLP
from minirl.rollout import episode_returns, rollout

__all__ = ["ExpertResult", "evaluate_policy", "train_cartpole_expert", "train_pendulum_expert",
           "CARTPOLE_CONFIG", "PENDULUM_CONFIG"]

CARTPOLE_CONFIG = PPOConfig(n_steps=32, n_epochs=20, n_minibatches=1, lr=1e-3, gamma=0.98, gae_lambda=0.8)
"""RL Zoo's PPO hyperparameters for CartPole-v1 (with 8 envs: 256 steps per update)."""
PENDULUM_CONFIG = PPOConfig(n_steps=256, n_epochs=10, n_minibatches=32, lr=1e-3, gamma=0.9, gae_lambda=0.95)
"""PPO hyperparameters for Pendulum-v1 (with 8 envs: 2048 steps per update, minibatches of 64)."""
_EVAL_SEED = 10_000  # evaluation episodes start from env seeds training never used


@dataclass
class ExpertResult:
    """A trained PPO expert and how it got there."""

    policy: Policy
    """The trained policy (acts on raw observations)."""
    value_fn: ValueMLP
    """Its value function."""
    history: list[dict[str, Any]]
    """:meth:`PPO.train`'s records, one per iteration."""
    eval_deterministic: float
    """Mean return of the greedy (mode) policy over ``n_eval`` episodes."""
    eval_stochastic: float
    """Mean return of the sampling policy over the same ``n_eval`` start states."""
    env_steps: int
    """Environment transitions used for training."""
    wall_s: float
    """Training wall time in seconds (evaluation excluded)."""


def evaluate_policy(env_id: str, policy: Policy, n_episodes: int = 10, seed: int = _EVAL_SEED,
                    deterministic: bool = True) -> float:
    """Mean undiscounted env return of ``policy`` over ``n_episodes`` whole episodes (env seeds from ``seed``)."""
    envs = gym.make_vec(env_id, num_envs=n_episodes, vectorization_mode="sync")
    try:
        batch = rollout(envs, policy, n_episodes, seed=seed, deterministic=deterministic,
                        generator=torch.Generator().manual_seed(seed))
    finally:
        envs.close()
    return episode_returns(batch).mean().item()


def _train(env_id: str, policy: Policy, value_fn: ValueMLP, config: PPOConfig, total_steps: int, n_envs: int,
           n_eval: int, reward_scale: float, progress: bool) -> ExpertResult:
    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync")
    reward_fn = None if reward_scale == 1.0 else (lambda batch: batch.rewards * reward_scale)
    start = time.perf_counter()
    try:
        history = PPO(policy, value_fn, config).train(envs, total_steps, reward_fn=reward_fn, progress=progress)
    finally:
        envs.close()
    wall = time.perf_counter() - start
    return ExpertResult(policy, value_fn, history,
                        eval_deterministic=evaluate_policy(env_id, policy, n_eval, deterministic=True),
                        eval_stochastic=evaluate_policy(env_id, policy, n_eval, deterministic=False),
                        env_steps=history[-1]["env_steps"], wall_s=wall)


def train_cartpole_expert(seed: int = 0, total_steps: int = 50_000, n_envs: int = 8, n_eval: int = 10,
                          config: PPOConfig = CARTPOLE_CONFIG, progress: bool = False) -> ExpertResult:
    """PPO on CartPole-v1 with an MLP policy (64, 64); returns the policy, history and evaluation."""
    policy = MLPPolicy(4, 2, hidden=(64, 64), seed=seed)
    value_fn = ValueMLP(4, hidden=(64, 64), seed=seed + 1)
    return _train("CartPole-v1", policy, value_fn, replace(config, seed=seed), total_steps, n_envs, n_eval,
                  reward_scale=1.0, progress=progress)


def train_pendulum_expert(seed: int = 0, total_steps: int = 200_000, n_envs: int = 8, n_eval: int = 10,
                          reward_scale: float = 0.1, config: PPOConfig = PENDULUM_CONFIG,
                          progress: bool = False) -> ExpertResult:
    """PPO on Pendulum-v1 with a Gaussian policy (64, 64); returns the policy, history and evaluation.

    ``reward_scale`` multiplies the reward the learner sees (module docstring); the reported
    returns are the env's.
    """
    if not reward_scale > 0:
        raise ValueError(f"reward_scale: must be > 0, got {reward_scale}")
    policy = GaussianPolicy(3, 1, hidden=(64, 64), seed=seed)
    value_fn = ValueMLP(3, hidden=(64, 64), seed=seed + 1)
    return _train("Pendulum-v1", policy, value_fn, replace(config, seed=seed), total_steps, n_envs, n_eval,
                  reward_scale=reward_scale, progress=progress)
