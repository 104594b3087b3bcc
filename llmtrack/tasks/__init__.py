"""Toy tasks for llmtrack: prompt distributions, exact experts, gold rewards, data generators.

    make_task("markov", beta=1.0)   short reviews from a bigram language; the expert is the exact
                                    KL-regularised optimum (answer key by soft value iteration)
    make_task("sort", max_len=8)    sort a list of digits; programmatic expert, correctness reward

See :mod:`llmtrack.tasks.base` for the shared interface (demonstrations, base_corpus,
preferences, token_mdp) and each module for its equations.
"""

from llmtrack.tasks.base import TASKS, ExactPolicy, Task, make_task, register_task
from llmtrack.tasks.markov import BigramPolicy, MarkovTask
from llmtrack.tasks.sort import SortPolicy, SortTask

__all__ = ["Task", "ExactPolicy", "make_task", "register_task", "TASKS",
           "MarkovTask", "BigramPolicy", "SortTask", "SortPolicy"]
