"""Tiny HuggingFace causal language models, built from configs -- never fetched from a hub.

Presets (GPT-2 and Llama families), sized for where they run:
    nano   tests: ~0.1M parameters, seconds on a CPU
    small  notebooks: ~1M parameters, minutes on a CPU
    base   a GPU: ~100M parameters (GPT-2-small-like width and depth)
``build_model(preset, vocab_size, ...)`` makes a freshly initialised model (seeded, no
dropout: the log-prob of a token must be the same when it is sampled and when it is trained
on, or importance ratios and KL estimates are noise);
``load_model(path)`` loads any local causal-LM checkpoint directory; ``save_model`` writes
one atomically (a temporary folder renamed into place, so an interrupted save leaves the
last good checkpoint intact).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from minirl import parallel
from minirl.outputs import WRITTEN, check_output_dir, remove_stale_temporaries, temporary_sibling
from llmtrack.tokenizer import BOS, EOS, MASK, PAD, UNK

__all__ = ["PRESETS", "ModelPreset", "MODEL_MARK", "build_model", "check_checkpoint", "check_checkpoint_tokenizer",
           "check_model_out", "load_model", "model_folder_state", "save_model", "count_parameters", "resolve_device"]


@dataclass(frozen=True)
class ModelPreset:
    """Width and depth of a preset; the family decides the block (GPT-2 or Llama)."""

    d_model: int
    """Hidden size."""
    n_layers: int
    """Transformer blocks."""
    n_heads: int
    """Attention heads (d_model must divide evenly)."""
    max_positions: int
    """Longest context the model accepts (prompt + response)."""


PRESETS: dict[str, ModelPreset] = {
    "nano": ModelPreset(d_model=64, n_layers=2, n_heads=2, max_positions=64),
    "small": ModelPreset(d_model=128, n_layers=4, n_heads=4, max_positions=128),
    "base": ModelPreset(d_model=768, n_layers=12, n_heads=12, max_positions=256),
}
FAMILIES = ("gpt2", "llama")


def build_model(preset: str = "nano", vocab_size: int = 64, family: str = "gpt2", seed: int = 0,
                max_positions: int | None = None):
    """A randomly initialised causal LM of the given preset and family (deterministic in ``seed``).

    ``max_positions`` overrides the preset's context length (e.g. to generate 256 tokens with ``base``);
    None keeps it, and with it the weights a seed gives.
    """
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"preset: unknown size {preset!r}; valid: {sorted(PRESETS)}")
    if family not in FAMILIES:
        raise ValueError(f"family: unknown model family {family!r}; valid: {list(FAMILIES)}")
    if vocab_size < 6:
        raise ValueError(f"vocab_size: must be >= 6 (5 special tokens and a word), got {vocab_size}")
    p = PRESETS[preset]
    if max_positions is not None:
        from minirl.checks import check_int

        p = ModelPreset(p.d_model, p.n_layers, p.n_heads, check_int(max_positions, "max_positions", 1))
    special = dict(bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    if family == "gpt2":
        config = GPT2Config(vocab_size=vocab_size, n_positions=p.max_positions, n_embd=p.d_model,
                            n_layer=p.n_layers, n_head=p.n_heads, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, **special)
        cls = GPT2LMHeadModel
    else:
        config = LlamaConfig(vocab_size=vocab_size, hidden_size=p.d_model, intermediate_size=4 * p.d_model,
                             num_hidden_layers=p.n_layers, num_attention_heads=p.n_heads,
                             num_key_value_heads=p.n_heads, max_position_embeddings=p.max_positions,
                             tie_word_embeddings=True, attention_dropout=0.0, **special)
        cls = LlamaForCausalLM
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # weights depend on the seed only, not on global RNG state
    model = cls(config)
    torch.random.set_rng_state(state)
    return model


_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_checkpoint(path: str | os.PathLike, field: str = "path"):
    """Refuse a directory that is not a local causal-LM checkpoint, without loading weights.

    Raises a ValueError naming ``field`` (the caller's name for the argument) if the directory
    is missing, has no readable config.json, describes a model type without a causal-LM head,
    or holds no weights file. Returns the model config.
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{field}: {str(path)!r} is a file; a checkpoint is a folder (config.json and weights)")
    if not path.is_dir():
        raise ValueError(f"{field}: checkpoint folder {str(path)!r} does not exist")
    if not (path / "config.json").is_file():
        raise ValueError(f"{field}: {str(path)!r} has no config.json, so it is not a HuggingFace checkpoint")
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(f"{field}: {str(path)!r} has an unreadable config.json ({err})") from err
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"{field}: {str(path)!r} is not a causal LM checkpoint ({type(config).__name__})")
    if not any((path / name).is_file() for name in _WEIGHTS):
        raise ValueError(f"{field}: {str(path)!r} has a config but no weights ({' / '.join(_WEIGHTS)})")
    weights = path / "model.safetensors"
    if weights.is_file():  # read the header only: a truncated or corrupt file is refused before any work
        try:
            from safetensors import safe_open

            with safe_open(str(weights), framework="pt") as f:
                f.keys()
        except Exception as err:  # safetensors raises its own SafetensorError
            raise ValueError(f"{field}: {str(weights)!r} is not a readable safetensors file ({err})") from None
    return config


_LAYOUT = {"pad_token_id": PAD, "bos_token_id": BOS, "eos_token_id": EOS, "mask_token_id": MASK, "unk_token_id": UNK}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def check_checkpoint_tokenizer(path: str | os.PathLike, field: str = "checkpoint", vocab_size: int | None = None):
    """Refuse, before any training, a checkpoint whose tokenizer the token MDP cannot use; returns the tokenizer.

    Every check is a ValueError naming ``field`` and the tokenizer's attribute:
      * the tokenizer must be in the folder (the model's ids mean nothing without it);
      * pad and EOS must be different tokens: where they are equal, the loss masks every [PAD] and
        with it the model's own stop token, and a model trained so never learns to stop;
      * its special tokens must sit at llmtrack's ids (PAD 0, BOS 1, EOS 2, MASK 3, UNK 4): the policy
        never emits fillers, the attention mask skips [PAD]/[MASK] and generation stops at id 2, so
        another layout would be read as different tokens (re-map the checkpoint's embeddings first);
      * its vocabulary must fit the model's (``config.vocab_size``) and, when given, ``vocab_size``
        (a task's, or the other model's of a policy/reference or teacher/student pair).
    """
    from transformers import AutoTokenizer

    config = check_checkpoint(path, field)
    path = Path(path).expanduser()
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ValueError(f"{field}: {str(path)!r} holds a model but no tokenizer ({' / '.join(_TOKENIZER_FILES)}); "
                         "save the tokenizer beside it (save_model(model, path, tokenizer=...))")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as err:  # OSError, ValueError, a tokenizers parse error ...
        raise ValueError(f"{field}: {str(path)!r} has an unreadable tokenizer ({err})") from err
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is not None and pad == eos:
        raise ValueError(f"{field}: the tokenizer's pad_token_id equals its eos_token_id ({pad}); a model trained "
                         "with pad = EOS masks its own stop token and never learns to stop: give it its own [PAD]")
    for name, want in _LAYOUT.items():
        got = getattr(tokenizer, name, None)
        if got != want:
            raise ValueError(f"{field}: the tokenizer's {name} is {got}, llmtrack's token layout needs {want} "
                             f"(PAD 0, BOS 1, EOS 2, MASK 3, UNK 4); re-map the checkpoint's special tokens")
    model_vocab = int(getattr(config, "vocab_size", 0) or 0)
    if len(tokenizer) > model_vocab:
        raise ValueError(f"{field}: the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is "
                         f"{model_vocab}: ids past {model_vocab - 1} have no embedding")
    if vocab_size is not None and model_vocab != vocab_size:
        raise ValueError(f"{field}: the model's vocab_size is {model_vocab}, the other side needs {vocab_size}")
    return tokenizer


def load_model(path: str | os.PathLike, field: str = "path"):
    """Load a causal LM from a local checkpoint directory (no hub access); bad folders are refused
    by :func:`check_checkpoint` with a ValueError naming ``field``."""
    from transformers import AutoModelForCausalLM

    config = check_checkpoint(path, field)
    try:
        return AutoModelForCausalLM.from_pretrained(Path(path), local_files_only=True)
    except Exception as err:  # OSError, ValueError, safetensors' SafetensorError, a shape mismatch ...
        raise ValueError(f"{field}: {str(path)!r} is not a loadable causal LM checkpoint "
                         f"({type(config).__name__}: {err})") from err


MODEL_MARK = "llmtrack_model.json"
"""The file that marks a model folder as ours: it lists the files the save wrote (``minirl.outputs``, rule 2)."""


def model_folder_state(path: str | os.PathLike) -> str:
    """What is at ``path``: "missing", "empty", "ours" (a folder holding only a model we saved: the files
    its ``llmtrack_model.json`` lists), "foreign" (any other non-empty folder) or "file"."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "file"
    entries = {e.name for e in path.iterdir()}
    if not entries:
        return "empty"
    try:
        listed = set(json.loads((path / MODEL_MARK).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return "foreign"
    return "ours" if entries <= listed | {MODEL_MARK} else "foreign"


def check_model_out(path: str | os.PathLike, field: str = "out", force: bool = False) -> Path:
    """Refuse, before any work, a place a model cannot be saved to without touching what is not ours.

    A missing or empty folder, or one holding only a model we saved, is fine. A file is refused. A
    non-empty folder we did not write is refused unless ``force``: then the model's files are written into
    it beside what is there (files with a model file's name are replaced; nothing else is touched).
    """
    path = Path(path).expanduser()
    state = model_folder_state(path)
    if state == "file":
        raise ValueError(f"{field}: {str(path)!r} is a file; a model is saved as a folder")
    if state == "foreign" and not force:
        raise ValueError(f"{field}: {str(path)!r} is a non-empty folder that llmtrack did not write; choose a new "
                         "or empty folder, or pass --force to write the model's files into it beside what is there")
    check_output_dir(path, field)
    return path


def _repair(path: Path) -> None:
    """Undo what an interrupted :func:`save_model` left beside ``path``: temporaries of dead processes are
    removed; if a crash fell between moving the old model aside and moving the new one in, the old one
    (complete) is moved back."""
    remove_stale_temporaries(path.parent, path.name)
    old = path.with_name(f".{path.name}.old")
    if old.is_dir() and model_folder_state(old) == "ours":
        if not path.exists():
            os.replace(old, path)
        else:
            shutil.rmtree(old, ignore_errors=True)


def save_model(model, path: str | os.PathLike, tokenizer=None, force: bool = False,
               extra_files: dict[str, str] | None = None) -> Path:
    """Save a model (and tokenizer) to the folder ``path`` atomically, never over what is not ours.

    ``save_pretrained`` writes into a temporary sibling folder, together with ``extra_files`` (name ->
    text) and the mark ``llmtrack_model.json`` listing every file; then:
      * ``path`` missing or empty: the temporary folder is renamed to ``path``;
      * ``path`` is a model we saved: it is moved aside, the new one renamed in, the old one removed (an
        interruption leaves one complete model, repaired by the next save);
      * ``path`` is anything else: refused unless ``force``, which moves the model's files in one by one
        beside what is there (:func:`check_model_out`).
    Under ``accelerate launch`` only the main process writes; the others wait until it has.
    """
    path = Path(path).expanduser()
    check_model_out(path, force=force)
    if not parallel.is_main_process():  # under accelerate launch only the main process writes
        parallel.barrier()
        return path
    try:
        return _save_model(model, path, tokenizer, extra_files)
    finally:
        parallel.barrier()  # the others return once the checkpoint is complete


def _save_model(model, path: Path, tokenizer, extra_files: dict[str, str] | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair(path)
    tmp = temporary_sibling(path, directory=True)
    try:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        files = sorted(e.name for e in tmp.iterdir())
        (tmp / MODEL_MARK).write_text(json.dumps({"written_by": "llmtrack", "files": files}, indent=1))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a checkpoint is for everyone
        state = model_folder_state(path)
        if state in ("missing", "empty"):
            os.replace(tmp, path)  # renaming onto an empty folder replaces it
        elif state == "ours":
            old = path.with_name(f".{path.name}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:  # foreign, with force: beside what is there
            for name in files + [MODEL_MARK]:
                if (path / name).is_dir():
                    raise ValueError(f"out: {str(path / name)!r} is a folder where the model's file {name!r} goes")
                os.replace(tmp / name, path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    WRITTEN.append(path)
    return path


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def resolve_device(device: str = "auto", field: str = "device") -> torch.device:
    """"auto" -> CUDA if present, else CPU; otherwise the named device, if this machine has it
    (:func:`minirl.checks.check_device`: "tpu", or "cuda" without a GPU, is a ValueError naming ``field``)."""
    from minirl.checks import check_device

    return check_device(device, field)
