"""Data parallelism through HuggingFace Accelerate: the same script under ``python`` and ``accelerate launch``.

The idea (docs/scale.md): W processes each hold a full copy of the parameters. Every process
draws the same global minibatch I of B items (one generator, the run's seed), takes its own
contiguous shard I_r of B / W items, computes its loss on the shard, and the gradients are
summed across processes before the optimiser step; every process then takes the same step, so
the copies stay equal. For the step to be the one-process step on all of I, shard r's loss is
weighted by its share of the global normaliser,

    L = sum_{i in I} l_i / sum_{i in I} w_i = sum_r  L_r * (sum_{i in I_r} w_i) / (sum_{i in I} w_i),

where L_r is the shard's own weighted mean and w_i the item's weight: its number of real tokens
for a loss averaged over tokens (BC / SFT), 1 for a loss averaged over items (DPO, reward
models). Every process knows I, so the weights need no communication. Metrics are combined the
same way (``reduce_metric``).

Design: Accelerate owns what it is good at -- reading ``accelerate launch``'s environment,
starting the process group (gloo on CPU, NCCL on GPUs), the collectives, the main-process
flag. The loop stays ours, because minibatch_training's loss functions call the policy
directly (no DDP wrapper in the way). One process (plain ``python``, or ``accelerate launch``
with one process) never imports Accelerate and computes exactly what it always did.

Per-process seeds: what each process samples on its own (rollouts) must differ, so
``process_seed(seed)`` = seed for the main process and seed + 1_000_003 * rank for the others;
what every process must agree on (the minibatch indices) uses the run's seed unchanged.

On-policy data: each process samples its own share of a batch (its own seed), and ``gather_batch``
concatenates the shares in rank order on every process, so every process then holds the same
batch and the update above splits it again; the sampling, the costly part, is done once.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor

__all__ = ["world_size", "rank", "is_main_process", "process_seed", "accelerator", "local_device", "shard_of",
           "all_reduce_gradients", "broadcast_parameters", "reduce_metric", "on_main_process", "barrier",
           "minibatches", "token_shard", "synced_step", "shutdown", "gather_batch"]

T = TypeVar("T")


def _launched_world_size() -> int:
    """The process count ``accelerate launch`` / ``torchrun`` put in the environment (1 if none)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@lru_cache(maxsize=1)
def accelerator():
    """The run's ``accelerate.Accelerator``, created on first use; None in a one-process run."""
    if _launched_world_size() <= 1:
        return None
    from accelerate import Accelerator  # a well-kept library for exactly this; only multi-process runs load it

    return Accelerator(cpu=not torch.cuda.is_available())


def world_size() -> int:
    acc = accelerator()
    return 1 if acc is None else acc.num_processes


def rank() -> int:
    acc = accelerator()
    return 0 if acc is None else acc.process_index


def is_main_process() -> bool:
    return rank() == 0


def process_seed(seed: int) -> int:
    """This process's own seed derived from the run's: ``seed`` on the main process."""
    return int(seed) + 1_000_003 * rank()


def local_device(device: torch.device) -> torch.device:
    """This process's own GPU for a bare ``cuda`` under several processes (accelerate launch gives each
    process one); any other device, and every device in a one-process run, is returned unchanged."""
    if device.type != "cuda" or device.index is not None or _launched_world_size() <= 1:
        return device
    return accelerator().device


def barrier() -> None:
    acc = accelerator()
    if acc is not None:
        acc.wait_for_everyone()


def shutdown() -> None:
    """End a multi-process run cleanly: wait for every process, then leave the process group.

    Call it last in a launched script. A process that exits while the collective backend's
    threads still hold open connections can be aborted at interpreter exit ("terminate called
    without an active exception", SIGABRT) after all its work is done; leaving the group first
    closes them in order. Nothing happens in a one-process run."""
    if accelerator() is None:
        return
    barrier()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def on_main_process(fn: Callable[[], T]) -> T | None:
    """Run ``fn`` (a checkpoint or figure write) on the main process only; the others wait for it."""
    result = fn() if is_main_process() else None
    barrier()
    return result


def shard_of(index: Tensor, field: str = "batch_size") -> Tensor:
    """This process's contiguous shard of a global minibatch index (B,) -> (B / W,).

    A ValueError naming ``field`` when B is not divisible by the number of processes W: the
    per-process batch would differ between processes, and so would the effective batch.
    """
    W = world_size()
    if W == 1:
        return index
    if len(index) % W:
        down, up = len(index) // W * W, -(-len(index) // W) * W
        raise ValueError(f"{field}: the minibatch of {len(index)} items does not split over the {W} processes "
                         f"of accelerate launch --num_processes {W}; use a multiple of {W} "
                         f"(e.g. {down or up} or {up}), or launch a number of processes that divides it")
    size = len(index) // W
    return index[rank() * size: (rank() + 1) * size]


def minibatches(n_items: int, n_chunks: int, generator: torch.Generator, field: str) -> tuple[Tensor, ...]:
    """One epoch's global minibatches: ``randperm(n_items).chunk(n_chunks)`` from ``generator`` (seeded
    alike on every process, so the same everywhere). A ValueError naming ``field`` -- before any step --
    unless every minibatch splits over the W processes; one process: any sizes."""
    chunks = torch.randperm(n_items, generator=generator).chunk(n_chunks)
    W, sizes = world_size(), sorted({len(c) for c in chunks})
    if W > 1 and any(size % W for size in sizes):
        raise ValueError(f"{field}: {n_items} items in {n_chunks} minibatches make minibatches of {sizes} items, "
                         f"not all a multiple of the {W} processes of accelerate launch --num_processes {W}; "
                         f"choose {field} and the batch so that each is (e.g. {n_chunks * W} divides the batch)")
    return chunks


def token_shard(mask: Tensor, field: str = "batch_size") -> tuple[Tensor, float]:
    """This process's rows of a global minibatch and their share of its real tokens.

    ``mask`` (B, T) is the whole minibatch's; returns (positions (B / W,), share) with
    share = (real tokens in the shard) / (real tokens in the minibatch), the weight that turns the
    shard's token mean into its part of the global token mean (module docstring, w_i = tokens of
    row i). One process: (arange(B), 1.0). The divisibility error names ``field``.
    """
    positions = shard_of(torch.arange(len(mask)), field)  # (B / W,)
    if world_size() == 1:
        return positions, 1.0
    tokens = mask.reshape(len(mask), -1).sum(1).double()  # (B,)
    return positions, float(tokens[positions].sum() / tokens.sum().clamp_min(1.0))


def synced_step(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], loss: Tensor,
                share: float = 1.0, max_grad_norm: float | None = None) -> None:
    """One optimiser step on sum_r share_r L_r: backward of this shard's weighted loss, the gradients
    summed over processes, then the *global* gradient norm clipped to ``max_grad_norm`` (every process
    clips the same summed gradient), then the step. One process: zero_grad, backward, clip, step."""
    optimizer.zero_grad()
    (loss if world_size() == 1 else loss * share).backward()
    all_reduce_gradients(params)  # before clipping: the norm is the global gradient's
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()


def all_reduce_gradients(params: list[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over the processes, in one flat buffer (what DDP does in buckets)."""
    acc = accelerator()
    if acc is None:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])  # (n_params,)
    flat = acc.reduce(flat, reduction="sum")
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset: offset + n].view_as(p).to(p.dtype)
        offset += n


def broadcast_parameters(params: list[torch.nn.Parameter]) -> None:
    """Copy the main process's parameters to every process (they must start equal, as under DDP)."""
    if accelerator() is None:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def reduce_metric(value: Any, share: float) -> Any:
    """Combine a per-shard metric over processes: sum_r share_r * value_r (``share_r`` the shard's
    weight fraction, so a shard mean becomes the global mean). Floats and flat dicts of floats are
    combined; anything else is returned as this process's own value."""
    acc = accelerator()
    if acc is None:
        return value
    if isinstance(value, dict):
        keys = [k for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not keys:
            return value
        summed = acc.reduce(torch.tensor([float(value[k]) * share for k in keys], dtype=torch.float64,
                                         device=acc.device), reduction="sum").tolist()
        return {**value, **dict(zip(keys, summed))}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(acc.reduce(torch.tensor([float(value) * share], dtype=torch.float64, device=acc.device),
                                reduction="sum")[0])
    return value


def gather_batch(batch: Any) -> Any:
    """Every process's batch (a :class:`~minirl.data.TrajectoryBatch`), concatenated in rank order on every
    process (``TrajectoryBatch.cat``: shares of different lengths are padded). One process: ``batch`` itself.

    The shares travel as pickled objects (``all_gather_object``): batches are small next to the model,
    and their shapes differ between processes, which a tensor all-gather would not allow."""
    if accelerator() is None:
        return batch
    import torch.distributed as dist

    from minirl.data import TrajectoryBatch

    shares: list[Any] = [None] * world_size()
    dist.all_gather_object(shares, batch.to("cpu"))
    return TrajectoryBatch.cat(shares)
