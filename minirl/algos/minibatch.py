"""The one minibatch loop of the supervised learners: BC, DPO and reward models (docs/equations.md §3, §5, §6).

Each of them minimises the mean of a per-item loss over a fixed dataset (demonstration
trajectories, preference pairs) with Adam:

    for k = 1..n_updates:
        I_k ~ Uniform({0..n-1})^batch_size          (with replacement; all n items if batch_size is None or >= n)
        theta <- Adam step on L(I_k)

The algorithm supplies only L, as a function of the drawn indices; the draws come from one
generator seeded with ``config.seed``, so a run is reproducible and the three learners differ
only in their loss. The config is any object with ``n_updates``, ``batch_size``, ``lr``,
``seed`` and optionally ``weight_decay`` and ``progress`` (checked by
:func:`minirl.checks.check_minibatch_training`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["trainable_parameters", "minibatch_training"]

Record = TypeVar("Record")


def trainable_parameters(module: nn.Module, field: str = "policy") -> list[nn.Parameter]:
    """The parameters of ``module`` that require gradients; a ValueError naming ``field`` if there are none."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{field}: has no trainable parameters")
    return params


def minibatch_training(params: Iterable[nn.Parameter], n_items: int, config: Any,
                       loss_fn: Callable[[Tensor | None], tuple[Tensor, Record]], desc: str = "") -> list[Record]:
    """Run ``config.n_updates`` Adam steps on ``loss_fn(index)``; returns the record of every step.

    Args:
        params: what Adam updates (lr ``config.lr``, weight decay ``config.weight_decay`` or 0).
        n_items: dataset size n (trajectories or pairs).
        loss_fn: ``index -> (loss, record)``: ``index`` (batch_size,) long drawn with replacement, or
            None for the whole dataset; ``record`` (e.g. the loss as a float) is kept per step.
        desc: the progress bar's label (shown if ``config.progress``).
    """
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=getattr(config, "weight_decay", 0.0))
    generator = torch.Generator().manual_seed(config.seed)
    full = config.batch_size is None or config.batch_size >= n_items
    history: list[Record] = []
    for _ in tqdm(range(config.n_updates), desc=desc, disable=not getattr(config, "progress", False)):
        index = None if full else torch.randint(n_items, (config.batch_size,), generator=generator)
        loss, record = loss_fn(index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(record)
    return history
