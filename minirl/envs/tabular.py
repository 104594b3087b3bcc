"""Gymnasium environments built from any :class:`~minirl.mdp.TabularMDP`.

``TabularEnv`` is the ordinary one-environment API (passes gymnasium's env checker);
``TabularVectorEnv`` steps N copies in one numpy call, which is what makes
thousands of tabular rollouts per second possible. Both emit state ids as
observations. An MDP without reward (``mdp.R is None``) emits reward 0.0, because
gymnasium's API requires a float, and says so with ``info["reward_hidden"] = True``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from minirl.mdp import TabularMDP

__all__ = ["TabularEnv", "TabularVectorEnv"]


class TabularEnv(gym.Env[np.int64, np.int64]):
    """One episode of a tabular MDP: s0 ~ rho0, s' ~ P[s, a], reward R[s, a].

    The episode terminates on entering a state of ``mdp.terminal`` and is truncated after
    ``mdp.horizon`` steps (if set).
    """

    metadata = {"render_modes": []}

    def __init__(self, mdp: TabularMDP):
        if not isinstance(mdp, TabularMDP):
            raise ValueError(f"mdp: must be a TabularMDP, got {type(mdp).__name__}")
        self.mdp = mdp
        self.observation_space = gym.spaces.Discrete(mdp.n_states)
        self.action_space = gym.spaces.Discrete(mdp.n_actions)
        self._state = 0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._state = int(self.np_random.choice(self.mdp.n_states, p=self.mdp.rho0))
        self._t = 0
        return np.int64(self._state), {}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action: must be an int in [0, {self.mdp.n_actions}), got {action!r}")
        s, a = self._state, int(action)
        s_next = int(self.np_random.choice(self.mdp.n_states, p=self.mdp.P[s, a]))
        info: dict[str, Any] = {}
        if self.mdp.R is None:
            reward, info["reward_hidden"] = 0.0, True
        else:
            reward = float(self.mdp.R[s, a])
        self._state, self._t = s_next, self._t + 1
        terminated = bool(self.mdp.terminal is not None and self.mdp.terminal[s_next])
        # As in the vector env: an episode that reaches a terminal state is terminated, not truncated.
        truncated = self.mdp.horizon is not None and self._t >= self.mdp.horizon and not terminated
        return np.int64(s_next), reward, terminated, truncated, info


class TabularVectorEnv(VectorEnv):
    """N independent copies of a tabular MDP stepped together with numpy.

    ``hide_reward=True`` is the vectorised counterpart of :class:`~minirl.envs.HideReward`.
    Autoreset is SAME_STEP: when a copy's episode ends, the observation returned is the
    first state of its next episode and the last state is in ``info["final_obs"]``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, mdp: TabularMDP, num_envs: int, hide_reward: bool = False):
        if not isinstance(mdp, TabularMDP):
            raise ValueError(f"mdp: must be a TabularMDP, got {type(mdp).__name__}")
        if num_envs < 1:
            raise ValueError(f"num_envs: must be >= 1, got {num_envs}")
        self.mdp, self.num_envs, self.hide_reward = mdp, num_envs, hide_reward
        self.single_observation_space = gym.spaces.Discrete(mdp.n_states)
        self.single_action_space = gym.spaces.Discrete(mdp.n_actions)
        self.observation_space = gym.spaces.MultiDiscrete([mdp.n_states] * num_envs)
        self.action_space = gym.spaces.MultiDiscrete([mdp.n_actions] * num_envs)
        self._cum_P = np.cumsum(mdp.P, axis=2)  # (S, A, S), for inverse-CDF sampling
        self._cum_rho0 = np.cumsum(mdp.rho0)
        self._rng = np.random.default_rng()
        self._state = np.zeros(num_envs, dtype=np.int64)
        self._t = np.zeros(num_envs, dtype=np.int64)

    def _sample_start(self, n: int) -> np.ndarray:
        u = self._rng.random(n)
        return np.minimum(np.searchsorted(self._cum_rho0, u, side="right"), self.mdp.n_states - 1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._state = self._sample_start(self.num_envs)
        self._t[:] = 0
        return self._state.copy(), {}

    def step(self, actions):
        a = np.asarray(actions, dtype=np.int64)
        if a.shape != (self.num_envs,) or np.any(a < 0) or np.any(a >= self.mdp.n_actions):
            raise ValueError(f"actions: must be {self.num_envs} ints in [0, {self.mdp.n_actions})")
        s = self._state
        u = self._rng.random(self.num_envs)[:, None]
        s_next = np.minimum((self._cum_P[s, a] <= u).sum(axis=1), self.mdp.n_states - 1)
        info: dict[str, Any] = {}
        if self.mdp.R is None or self.hide_reward:
            rewards = np.zeros(self.num_envs)
            info["reward_hidden"] = np.ones(self.num_envs, dtype=bool)
            if self.mdp.R is not None:  # the MDP\\R view of a rewarded MDP: gold reward for evaluators
                info["gold_reward"] = self.mdp.R[s, a].copy()
        else:
            rewards = self.mdp.R[s, a].copy()
        self._t += 1
        terminated = (self.mdp.terminal[s_next] if self.mdp.terminal is not None
                      else np.zeros(self.num_envs, dtype=bool))
        truncated = (self._t >= self.mdp.horizon if self.mdp.horizon is not None
                     else np.zeros(self.num_envs, dtype=bool)) & ~terminated
        done = terminated | truncated
        obs = s_next.copy()
        if done.any():
            info["final_obs"] = np.where(done, s_next, 0)
            info["_final_obs"] = done
            obs[done] = self._sample_start(int(done.sum()))
            self._t[done] = 0
        self._state = obs.copy()
        return obs, rewards, terminated, truncated, info
