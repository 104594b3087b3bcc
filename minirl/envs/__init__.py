"""Gymnasium environments: tabular MDPs as envs, the MDP\\R wrapper, designed MDPs.

Registered ids (``gymnasium.make``): ``minirl/Tightrope-v0`` and ``minirl/GridWorld-v0``;
keyword arguments go to :func:`tightrope` / :func:`gridworld`.
"""

from __future__ import annotations

import gymnasium as gym

from minirl.envs.designed import gridworld, tightrope
from minirl.envs.tabular import TabularEnv, TabularVectorEnv
from minirl.envs.wrappers import HideReward

__all__ = ["TabularEnv", "TabularVectorEnv", "HideReward", "tightrope", "gridworld"]


def _make_tightrope(**kwargs) -> TabularEnv:
    return TabularEnv(tightrope(**kwargs))


def _make_gridworld(**kwargs) -> TabularEnv:
    return TabularEnv(gridworld(**kwargs))


for _id, _entry in (("minirl/Tightrope-v0", _make_tightrope), ("minirl/GridWorld-v0", _make_gridworld)):
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)
