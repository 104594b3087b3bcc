"""llmtrack: language generation as a token-level MDP, on minirl's algorithms.

The second world of the library (docs/concepts.md), after the survey it follows (Sun & van der Schaar,
*Inverse Reinforcement Learning Meets Large Language Model Post-Training: Basics, Advances, and
Opportunities*, 2025): a TokenMDP, tiny HuggingFace policies and toy languages with exact answers, on
minirl's trajectory batch, policy protocol and algorithms. llmtrack adds a world, not algorithms; its
floors, bottom to top (nothing imports upwards):

    world        tokenizer, mdp (TokenMDP), models, policy (LMPolicy), rollout, reward_model, tasks (with
                 their answer keys: llmtrack.tasks.answer_key)
    pipelines    compositions of minirl's algorithms with the world: base model, SFT / distillation,
                 evaluation, RLHF (PPO, GRPO), AfD, best-of-N and RAFT, the alignment pipeline
    experiments  the named demos behind the CLI and the notebooks
    plots        figures and tables, reading results only
    cli          the ``llmtrack`` command

The names below are exported lazily (``llmtrack.make_task`` imports llmtrack.tasks on first use), so
``import llmtrack`` -- and the command line's ``--help`` -- stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "llmtrack.tasks": ("Task", "MarkovTask", "SortTask", "make_task"),
    "llmtrack.tasks.answer_key": ("expected_gold_reward", "exact_kl", "kl_to_optimum", "optimal_frontier",
                                  "sampled_point"),
    "llmtrack.mdp": ("TokenMDP",),
    "llmtrack.models": ("build_model", "load_model", "save_model"),
    "llmtrack.policy": ("LMPolicy", "frozen_reference"),
    "llmtrack.rollout": ("generate",),
    "llmtrack.reward_model": ("LMRewardModel", "frozen_linear_reward_model", "evaluate_reward_model"),
    "llmtrack.pipelines": ("pretrain_base", "sft", "distill", "evaluate", "run_sft", "train_rlhf", "train_afd",
                           "generate_best_of_n", "exact_best_of_n", "train_raft", "run_pipeline"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'llmtrack' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
