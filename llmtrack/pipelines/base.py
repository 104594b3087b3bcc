"""A tiny base model: "pre-training" = behaviour cloning on the task's base generator.

    theta_base = argmax_theta E_{(s, a) ~ base corpus} log pi_theta(a | s)       (docs/equations.md §3, BC)

The base generator (``task.base``) plays the role of the web: a broad, sloppy distribution
over the task's language. Fitting it with minirl's :func:`~minirl.algos.bc.train_bc`
(minibatched) is next-token pre-training on that corpus; nothing here is a second trainer.

The result is cached on disk (docs/concepts.md): ``save_model``
(atomic) into ``<cache root>/base/<key>``, where the key is a hash of everything that
determines the weights -- the task (name and constructor arguments), a digest of the
corpus itself (so any change to the base generator or its seeding is a new key), the model
size and family, the seed, the number of sequences, the BC config, the device type, the
number of CPU threads (float sums depend on it), the CPU kernel set torch uses (``ATEN_CPU_CAPABILITY``:
its rounding differs) and the torch / transformers versions. The
cache root is ``$LLMTRACK_CACHE`` or ``~/.cache/llmtrack``. Same inputs -> bit-identical
weights on the CPU; a cache hit loads the checkpoint and trains nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from minirl.algos.bc import BCConfig, train_bc
from minirl.checks import check_int, check_seed
from minirl.data import TrajectoryBatch
from minirl.outputs import remove_stale_temporaries
from llmtrack.models import FAMILIES, PRESETS, build_model, load_model, resolve_device, save_model
from llmtrack.policy import LMPolicy
from llmtrack.tasks import Task

__all__ = ["DEFAULT_PRETRAIN_BC", "BaseModel", "cache_root", "task_spec", "base_cache_key", "base_checkpoint_path",
           "pretrain_base"]

DEFAULT_PRETRAIN_BC = BCConfig(n_updates=800, batch_size=64, lr=3e-3)
"""Pre-training schedule: minibatches of 64 corpus sequences, Adam at 3e-3."""


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where cached checkpoints live: ``cache_dir``, else ``$LLMTRACK_CACHE``, else ``~/.cache/llmtrack``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("LLMTRACK_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "llmtrack"


def task_spec(task: Task) -> dict[str, Any]:
    """The task's name and constructor arguments (read back from attributes of the same name).

    Arguments a task does not keep under their own name (MarkovTask's ``n_words``) are
    covered by the corpus digest in :func:`base_cache_key`; this dict is for people reading
    the cache.
    """
    spec: dict[str, Any] = {"name": task.name, "vocab_size": task.vocab_size, "max_new_tokens": task.max_new_tokens}
    for name in inspect.signature(type(task).__init__).parameters:
        value = getattr(task, name, None)
        if isinstance(value, (bool, int, float, str)):
            spec[name] = value
    return spec


def _corpus_digest(corpus: TrajectoryBatch) -> str:
    h = hashlib.sha256()
    for x in (corpus.obs, corpus.actions, corpus.mask):
        h.update(str(tuple(x.shape)).encode())
        h.update(x.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def base_cache_key(task: Task, size: str, family: str, seed: int, n_sequences: int, bc: BCConfig,
                   device: str = "cpu", corpus: TrajectoryBatch | None = None) -> tuple[str, dict[str, Any]]:
    """(hex key, the JSON-able description it hashes); see the module docstring."""
    import transformers

    corpus = task.base_corpus(n_sequences, seed=seed) if corpus is None else corpus
    bc_fields = {k: v for k, v in dataclasses.asdict(bc).items() if k != "progress"}
    description = {
        "task": task_spec(task), "corpus_sha256": _corpus_digest(corpus), "size": size, "family": family,
        "seed": seed, "n_sequences": n_sequences, "bc": bc_fields, "device": resolve_device(device).type,
        "torch": torch.__version__, "transformers": transformers.__version__,
        # CPU float sums depend on how work is split across threads: bit-identical needs the same count.
        "cpu_threads": torch.get_num_threads() if resolve_device(device).type == "cpu" else None,
        # ... and on the CPU kernels torch picked (ATEN_CPU_CAPABILITY: default / avx2 / avx512), which round
        # differently: weights trained under one kernel set are not the weights another would train.
        "cpu_capability": torch.backends.cpu.get_cpu_capability() if resolve_device(device).type == "cpu" else None,
    }
    key = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:20]
    return key, description


def _check(size: str, family: str, n_sequences: int) -> None:
    if size not in PRESETS:
        raise ValueError(f"size: unknown size preset {size!r}; valid: {sorted(PRESETS)}")
    if family not in FAMILIES:
        raise ValueError(f"family: unknown model family {family!r}; valid: {list(FAMILIES)}")
    check_int(n_sequences, "n_sequences", 1)


DESCRIPTION = "llmtrack_base.json"
"""The file in a cache entry that holds what its key hashes; an entry without it is incomplete."""


def _complete(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / DESCRIPTION).is_file()


def _clear_incomplete(path: Path) -> None:
    """Remove what an interrupted save left under this key, and temporaries of processes that are gone.

    Only the cache's own entries are touched: ``path`` is ``<root>/base/<task>-<size>-<family>-<key>``, a
    name this module makes. An older version wrote the description after the rename, so a crash between
    the two left the weights without it; such an entry is re-trained.
    """
    remove_stale_temporaries(path.parent)
    if path.is_dir() and not _complete(path):
        shutil.rmtree(path, ignore_errors=True)


def base_checkpoint_path(task: Task, size: str = "nano", family: str = "gpt2", seed: int = 0,
                         n_sequences: int = 4000, bc: BCConfig = DEFAULT_PRETRAIN_BC, device: str = "cpu",
                         cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder :func:`pretrain_base` reads from / writes to for these inputs (it may not exist yet)."""
    _check(size, family, n_sequences)
    key, _ = base_cache_key(task, size, family, seed, n_sequences, bc, device)
    return cache_root(cache_dir) / "base" / f"{task.name}-{size}-{family}-{key}"


def pretrain_base(task: Task, size: str = "nano", family: str = "gpt2", seed: int = 0, n_sequences: int = 4000,
                  bc: BCConfig = DEFAULT_PRETRAIN_BC, cache_dir: str | os.PathLike | None = None,
                  cache: bool = True, device: str = "cpu") -> LMPolicy:
    """A base model for ``task``: BC on ``n_sequences`` samples of ``task.base`` (module docstring).

    Args:
        task: the toy language; its tokenizer fixes the vocabulary.
        size, family: model preset (``llmtrack.models.PRESETS``) and block ("gpt2" or "llama").
        seed: seeds the initial weights, the corpus and (unless ``bc.seed`` is set apart) nothing
            else; the minibatch order is ``bc.seed``.
        n_sequences: size of the pre-training corpus.
        bc: minirl's BC config (``DEFAULT_PRETRAIN_BC``: 800 minibatches of 64).
        cache_dir: cache root (default ``$LLMTRACK_CACHE`` or ``~/.cache/llmtrack``).
        cache: False trains from scratch and writes nothing.
        device: "cpu" (default: bit-reproducible), "cuda" or "auto".
    Returns:
        an :class:`LMPolicy` on ``device``, in eval mode (the adapter never uses dropout).
    """
    _check(size, family, n_sequences)
    preset = PRESETS[size]
    if task.context_size > preset.max_positions:
        raise ValueError(f"size: preset {size!r} has {preset.max_positions} positions, but task {task.name!r} "
                         f"needs contexts of {task.context_size} tokens")
    corpus = task.base_corpus(n_sequences, seed=seed)
    key, description = base_cache_key(task, size, family, seed, n_sequences, bc, device, corpus=corpus)
    path = cache_root(cache_dir) / "base" / f"{task.name}-{size}-{family}-{key}"
    if cache and _complete(path):
        return LMPolicy(load_model(path), device=device)
    if cache:
        _clear_incomplete(path)
    policy = LMPolicy(build_model(size, task.vocab_size, family=family, seed=seed), device=device)
    train_bc(policy, corpus, bc)
    if cache:  # what the key hashes goes inside the folder before it is renamed into place: all or nothing
        save_model(policy.model, path, tokenizer=task.tokenizer,
                   extra_files={DESCRIPTION: json.dumps(description, indent=1, sort_keys=True)})
    return policy


@dataclasses.dataclass(frozen=True)
class BaseModel:
    """Which base model: the one answer to that question that every pipeline and experiment shares.

    A value object over :func:`pretrain_base`'s arguments, validated on construction (before any
    work), so that a config holds one ``BaseModel`` instead of five loose fields, and the place that
    needs the model calls ``spec.build(task)``. Same spec and task -> the same cache entry, hence
    bit-identical weights on the CPU.

    Fields: ``size`` and ``family`` (the preset and block), ``seed`` (initial weights and corpus),
    ``n_sequences`` (corpus size), ``bc`` (minirl's BC config for pre-training), ``device``.
    """

    size: str = "nano"
    family: str = "gpt2"
    seed: int = 0
    n_sequences: int = 4000
    bc: BCConfig = DEFAULT_PRETRAIN_BC
    device: str = "cpu"

    def __post_init__(self) -> None:
        _check(self.size, self.family, self.n_sequences)
        check_seed(self.seed, "seed")
        if not isinstance(self.bc, BCConfig):
            raise ValueError(f"bc: must be a minirl BCConfig, got {type(self.bc).__name__}")

    def build(self, task: Task, cache_dir: str | os.PathLike | None = None, cache: bool = True) -> LMPolicy:
        """The base model for ``task`` (cached; see :func:`pretrain_base`)."""
        return pretrain_base(task, self.size, self.family, self.seed, self.n_sequences, self.bc,
                             cache_dir=cache_dir, cache=cache, device=self.device)

    def checkpoint_path(self, task: Task, cache_dir: str | os.PathLike | None = None) -> Path:
        """The cache folder :meth:`build` reads from or writes to (it may not exist yet)."""
        return base_checkpoint_path(task, self.size, self.family, self.seed, self.n_sequences, self.bc,
                                    self.device, cache_dir)
