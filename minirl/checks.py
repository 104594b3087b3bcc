"""Argument rules, written once: every config, batch and command checks its inputs with these.

The idea: bad input is refused *before any work*, with a ValueError whose message starts with the
field's name and states the rule (``"n_updates: must be an integer >= 1, got 2.5"``). A command line
prefixes its own name and exits with status 2; the Python API raises. Nothing is coerced silently:
``True`` is not the integer 1, ``"10"`` is not 10, a mask of 0.5 is not True, a NaN reward is not a
number.

Design decisions:
    * integers are ``int`` or numpy integers, never ``bool`` (``horizon=True`` would be horizon 1);
    * seeds live in [0, 2**32) -- the range numpy's and gymnasium's generators accept, so a seed that
      passes here is a seed every generator in the library takes;
    * numbers are finite real numbers (int or float, not bool), bounded where the field has a range;
    * every count has an upper bound (``MAX_SEEDS`` and the like): a typo such as ``--seeds 1000000``
      is refused at once instead of running until killed;
    * a device is checked against what torch reports (``cuda`` without CUDA, ``cuda:9`` on one GPU and
      ``tpu`` are refused), and thread counts are capped at the CPU count (torch segfaults on 100000).

torch is imported inside the functions that need it, so ``import minirl.checks`` stays cheap.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable

import numpy as np

__all__ = ["SEED_LIMIT", "MAX_SEEDS", "check_int", "check_seed", "check_seed_list", "check_number", "check_probability",
           "check_choice", "check_minibatch_training", "check_device", "check_threads", "check_finite", "check_binary_mask", "max_threads"]

SEED_LIMIT = 2**32
"""Seeds are integers in [0, SEED_LIMIT)."""
MAX_SEEDS = 100
"""Most repetitions a seed sweep may ask for (each is a full run)."""


def check_int(value: Any, field: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int if it is an integer (not a bool) in [minimum, maximum]; else a ValueError naming ``field``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        rule = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ValueError(f"{field}: must be {rule}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{field}: must be an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{field}: must be an integer <= {maximum}, got {value}")
    return value


def check_seed(value: Any, field: str = "seed") -> int:
    """A seed: an integer in [0, 2**32)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{field}: must be an integer in [0, 2**32), got {value!r}")
    return int(value)


def check_seed_list(value: Any, field: str = "seeds", offset: int = 0, distinct: bool = False) -> tuple[int, ...]:
    """A sweep's seeds: a non-empty list or tuple of at most ``MAX_SEEDS`` seeds (each is a whole run),
    each an integer in [0, 2**32 - offset) so that ``seed + offset`` -- a derived seed for evaluation
    samples, say -- is still a seed; pairwise distinct if ``distinct``."""
    if not isinstance(value, (tuple, list, range)) or not value:
        raise ValueError(f"{field}: must be a non-empty list of integers >= 0, got {value!r}")
    if len(value) > MAX_SEEDS:
        raise ValueError(f"{field}: at most {MAX_SEEDS} seeds (each is a full run), got {len(value)}")
    seeds = tuple(check_int(s, field, 0, SEED_LIMIT - 1 - offset) for s in value)
    if distinct and len(set(seeds)) != len(seeds):
        raise ValueError(f"{field}: must be distinct, got {value!r}")
    return seeds


def check_number(value: Any, field: str, minimum: float | None = None, maximum: float | None = None,
                 strict_minimum: bool = False) -> float:
    """A finite real number (int or float, not bool) in the given range; ``strict_minimum`` excludes the minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field}: must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{field}: must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        raise ValueError(f"{field}: must be {'>' if strict_minimum else '>='} {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{field}: must be <= {maximum}, got {value!r}")
    return value


def check_probability(value: Any, field: str) -> float:
    """A number in [0, 1]."""
    return check_number(value, field, 0.0, 1.0)


def check_choice(value: Any, field: str, valid: Iterable[Any]) -> Any:
    """``value`` if it is one of ``valid``."""
    valid = list(valid)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or value not in valid:
        raise ValueError(f"{field}: must be one of {valid}, got {value!r}")
    return value


def check_minibatch_training(config: Any) -> None:
    """The fields every minibatch-Adam config shares (BC, DPO, reward models): ``n_updates`` >= 1,
    ``batch_size`` >= 1 or None, ``lr`` > 0, ``weight_decay`` >= 0 where present, and ``seed``."""
    check_int(config.n_updates, "n_updates", 1)
    if config.batch_size is not None:
        check_int(config.batch_size, "batch_size", 1)
    check_number(config.lr, "lr", 0.0, strict_minimum=True)
    if hasattr(config, "weight_decay"):
        check_number(config.weight_decay, "weight_decay", 0.0)
    check_seed(config.seed)


def check_device(device: Any, field: str = "device"):
    """A torch.device the machine has: "cpu", "cuda", "cuda:N" (N < the GPU count), "mps", or "auto" (CUDA if
    present, else the CPU). Anything else -- an unknown type, CUDA without a GPU, a GPU index past the
    last -- is a ValueError naming ``field``."""
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(f"{field}: must be a device name such as 'cpu', 'cuda' or 'auto', got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{field}: unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{field}: {device!r} asked for, but torch sees no CUDA GPU on this machine; "
                             "use 'cpu' or 'auto'")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"{field}: {device!r} asked for, but this machine has {count} CUDA GPU(s) "
                             f"(cuda:0 .. cuda:{count - 1})")
    if parsed.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"{field}: 'mps' asked for, but torch reports no Apple GPU on this machine")
    if parsed.type == "cpu" and parsed.index not in (None, 0):
        raise ValueError(f"{field}: {device!r}: the CPU takes no index; use 'cpu'")
    return parsed


def max_threads() -> int:
    """The CPU count this process may use (its affinity mask where the OS reports one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_threads(value: Any, field: str = "threads") -> int:
    """A thread count in [1, the CPU count] (torch crashes on absurd counts)."""
    n = check_int(value, field, 1)
    if n > max_threads():
        raise ValueError(f"{field}: must be an integer in [1, {max_threads()}] (this machine's CPU count), got {n}")
    return n


def check_finite(tensor: Any, field: str) -> None:
    """Refuse a floating tensor holding NaN or +-inf (integer and bool tensors are always finite)."""
    import torch

    if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{field}: must be finite, got {bad} NaN or infinite value(s)")


def check_binary_mask(mask: Any, field: str = "mask"):
    """A mask as a bool tensor: bool already, or numbers that are exactly 0 or 1 (0.5, 2 and -1 are refused)."""
    import torch

    if mask.dtype == torch.bool:
        return mask
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{field}: must hold only 0/1 (or True/False), got values such as "
                         f"{sorted({float(v) for v in mask[(mask != 0) & (mask != 1)].flatten()[:3].tolist()})}")
    return mask.bool()
