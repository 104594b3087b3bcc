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

Under ``accelerate launch`` with W processes (:mod:`minirl.parallel`, docs/scale.md) the same
loop is data-parallel: every process draws the same I_k, computes L on its own contiguous
shard of B / W items, weighted by the shard's share of the global normaliser (``weights``: real
tokens per item for a token mean, 1 per item by default), and the gradients are summed over
processes before the step, so each step is the one-process step on all of I_k (to float
rounding) and the effective batch is ``batch_size`` whatever W is. The records are combined the
same way. One process runs exactly the loop above.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from minirl import parallel

__all__ = ["trainable_parameters", "minibatch_training"]

Record = TypeVar("Record")


def trainable_parameters(module: nn.Module, field: str = "policy") -> list[nn.Parameter]:
    """The parameters of ``module`` that require gradients; a ValueError naming ``field`` if there are none."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{field}: has no trainable parameters")
    return params


def minibatch_training(params: Iterable[nn.Parameter], n_items: int, config: Any,
                       loss_fn: Callable[[Tensor | None], tuple[Tensor, Record]], desc: str = "",
                       weights: Tensor | None = None) -> list[Record]:
    """Run ``config.n_updates`` Adam steps on ``loss_fn(index)``; returns the record of every step.

    Args:
        params: what Adam updates (lr ``config.lr``, weight decay ``config.weight_decay`` or 0).
        n_items: dataset size n (trajectories or pairs).
        loss_fn: ``index -> (loss, record)``: ``index`` (batch_size,) long drawn with replacement, or
            None for the whole dataset; ``record`` (e.g. the loss as a float) is kept per step.
        desc: the progress bar's label (shown if ``config.progress``).
        weights: (n,) what ``loss_fn`` normalises by, per item: the number of real tokens of each
            trajectory when the loss is a mean over tokens (BC / SFT). Only several processes read it
            (to weight the shards); None = a mean over items (DPO, reward models).
    """
    params = list(params)
    W = parallel.world_size()
    if W > 1:
        if config.batch_size is not None and config.batch_size < n_items:
            parallel.shard_of(torch.arange(config.batch_size))  # the divisibility error, before any work
        elif n_items < W:
            raise ValueError(f"n_items: {n_items} items cannot feed {W} processes; launch at most {n_items}")
        if weights is not None and weights.shape != (n_items,):
            raise ValueError(f"weights: need one weight per item, shape ({n_items},), got {tuple(weights.shape)}")
        parallel.broadcast_parameters(params)
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=getattr(config, "weight_decay", 0.0))
    generator = torch.Generator().manual_seed(config.seed)  # the same draws on every process
    full = config.batch_size is None or config.batch_size >= n_items
    history: list[Record] = []
    for _ in tqdm(range(config.n_updates), desc=desc, disable=not (getattr(config, "progress", False)
                                                                     and parallel.is_main_process())):
        index = None if full else torch.randint(n_items, (config.batch_size,), generator=generator)
        if W == 1:
            loss, record = loss_fn(index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append(record)
            continue
        everything = torch.arange(n_items) if index is None else index  # (B,): the global minibatch
        if index is None:  # the whole dataset: near-equal contiguous shards
            mine = torch.tensor_split(everything, W)[parallel.rank()]
        else:
            mine = parallel.shard_of(everything)  # (B / W,)
        w = torch.ones(n_items, dtype=torch.float64) if weights is None else weights.double().cpu()
        share = float(w[mine].sum() / w[everything].sum())  # this shard's part of the normaliser
        loss, record = loss_fn(mine)
        optimizer.zero_grad()
        (loss * share).backward()
        parallel.all_reduce_gradients(params)  # sum_r grad(share_r L_r) = grad L on all of I_k
        optimizer.step()
        history.append(parallel.reduce_metric(record, share))
    return history
