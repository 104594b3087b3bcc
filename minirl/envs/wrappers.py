"""Wrappers that change what the learner may see.

``HideReward`` turns an MDP into an MDP\\R (survey §2.3): the learner gets 0.0 where the
reward was, and the true ("gold") reward travels in ``info["gold_reward"]``, which the
rollout code stores in ``TrajectoryBatch.info`` for evaluators. No algorithm in this
library reads ``info``: that is the line between learning and grading.
"""

from __future__ import annotations

import gymnasium as gym

__all__ = ["HideReward"]


class HideReward(gym.Wrapper):
    """Hide the environment's reward from the learner (MDP\\R); keep it for evaluation."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, gold_reward=float(reward), reward_hidden=True)
        return obs, 0.0, terminated, truncated, info
