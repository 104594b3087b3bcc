"""Gymnasium environments: tabular MDPs as envs, the MDP\\R wrapper, designed MDPs.

Registered ids (``gymnasium.make``, registered by ``import minirl``): ``minirl/Tightrope-v0`` and
``minirl/GridWorld-v0``; keyword arguments go to :func:`tightrope` / :func:`gridworld`.
"""

from __future__ import annotations

from minirl.envs.designed import gridworld, tightrope
from minirl.envs.tabular import TabularEnv, TabularVectorEnv
from minirl.envs.wrappers import HideReward

__all__ = ["TabularEnv", "TabularVectorEnv", "HideReward", "tightrope", "gridworld", "make_tightrope",
           "make_gridworld"]


def make_tightrope(**kwargs) -> TabularEnv:
    """The env behind ``gymnasium.make("minirl/Tightrope-v0", **kwargs)``."""
    return TabularEnv(tightrope(**kwargs))


def make_gridworld(**kwargs) -> TabularEnv:
    """The env behind ``gymnasium.make("minirl/GridWorld-v0", **kwargs)``."""
    return TabularEnv(gridworld(**kwargs))
