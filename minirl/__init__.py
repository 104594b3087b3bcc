"""minirl: learning from behaviour on small MDPs -- with and without reward.

Every algorithm, loss and estimator of the library lives here, written once against the trajectory
batch and the policy protocol (docs/concepts.md); llmtrack runs them on language models. The library
follows the survey by Sun & van der Schaar, *Inverse Reinforcement Learning Meets Large Language Model
Post-Training: Basics, Advances, and Opportunities* (2025); "survey §N" in docstrings means its section N.

Import the parts you need: ``minirl.mdp`` (tabular MDPs and exact solvers, numpy only),
``minirl.envs`` (gymnasium environments), ``minirl.data`` / ``minirl.policies`` /
``minirl.rollout`` (the trajectory currency), ``minirl.algos`` (BC, DAgger, ...),
``minirl.experiments`` (the named demos) and ``minirl.plots``. Importing ``minirl`` itself
loads nothing heavy (numpy and gymnasium, no torch), so the tabular half and the CLI start fast.

``import minirl`` registers the library's gymnasium ids, as a gymnasium package is expected to:
``gymnasium.make("minirl/Tightrope-v0")`` and ``gymnasium.make("minirl/GridWorld-v0")`` (keyword
arguments go to :func:`minirl.envs.tightrope` / :func:`minirl.envs.gridworld`). The entry points are
strings, so the environment modules load only when an env is made.
"""

import gymnasium as _gym

__version__ = "0.1.0"

ENV_IDS = {"minirl/Tightrope-v0": "minirl.envs:make_tightrope", "minirl/GridWorld-v0": "minirl.envs:make_gridworld"}
"""The gymnasium ids ``import minirl`` registers, and their entry points."""

for _id, _entry in ENV_IDS.items():
    if _id not in _gym.registry:
        _gym.register(id=_id, entry_point=_entry)
