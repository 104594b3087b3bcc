"""Temporary shim: llmtrack/pipelines/rlhf.py still imports ``as_scorer`` from here. Delete this folder once it
calls :func:`minirl.scorers.as_scorer` (``as_scorer(scorer, task.gold_reward)``)."""

from __future__ import annotations

from typing import Any

from minirl.scorers import Scorer
from minirl.scorers import as_scorer as scorer_from

__all__ = ["as_scorer"]


def as_scorer(scorer: Any, task=None) -> Scorer:
    """:func:`minirl.scorers.as_scorer` with the task's gold reward as the default scorer."""
    return scorer_from(scorer, None if task is None else task.gold_reward)
