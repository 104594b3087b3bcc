"""The recipe behind ``llmtrack sft``: base model -> SFT (BC) or on-policy distillation (DAgger) -> evaluation.

    1. base      :func:`llmtrack.pipelines.base.pretrain_base` (cached) or a local checkpoint
    2. fine-tune ``algo="bc"``:     :func:`~llmtrack.pipelines.imitation.sft` on N demonstrations
                 ``algo="dagger"``: :func:`~llmtrack.pipelines.imitation.distill` with N labelled
                 sequences in all (a fifth of them demonstrations, the rest the student's own
                 generations over 4 rounds) -- equal data, and the same number of BC updates
    3. measure   :func:`llmtrack.pipelines.evaluate.evaluate`

Every choice is a field of :class:`SFTRunConfig`, validated on construction (before any
work): an unknown task, size, algorithm or family, or a checkpoint that is missing, not a
causal LM, or built for another vocabulary, is a ValueError naming the field.

Task settings (``TASK_SETTINGS``). sort: the task's defaults (lists of 2-8 digits, a base
generator that picks the right digit half the time). markov: 20 words, T = 10, and
``branching = n_words``, so pi_ref -- hence the expert pi* -- gives every word and [EOS]
positive probability. With the sparse default (8 successors per word) a softmax student,
which puts mass on every token, has KL(d^pi || d^beta) = +inf exactly; the full-support
language keeps both KLs finite and comparable.

Fine-tuning defaults (``TASK_TRAINING``). sort: N = 200 labelled sequences, 600 updates at
1e-3. markov: the expert is a distribution, and a handful of its samples is a poor picture of
it -- 600 updates on 200 demonstrations memorise them (training loss 0.4 nats per token against
the expert's entropy of 2.5) and leave the KLs an order of magnitude *above* the base model's;
N = 4000 and 300 gentler updates (3e-4) bring both KLs well below the base's.

Why DAgger does not beat SFT on sort at equal data, with the measurements and the designs tried,
is on the documentation's results page for language models (docs/results/language_models.md).
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from minirl.algos.bc import BCConfig
from llmtrack.models import (FAMILIES, PRESETS, check_checkpoint, check_checkpoint_tokenizer, check_model_out,
                             count_parameters, load_model, save_model)
from llmtrack.tokenizer import check_same_tokens
from minirl.outputs import check_output_dir
from llmtrack.pipelines.base import DESCRIPTION, BaseModel, cache_root
from llmtrack.pipelines.evaluate import EvalConfig, evaluate
from llmtrack.pipelines.imitation import DistillConfig, SFTConfig, distill, on_policy_dagger, sft
from llmtrack.policy import LMPolicy
from llmtrack.tasks import TASKS, Task, make_task

__all__ = ["TASK_SETTINGS", "TASK_TRAINING", "ALGOS", "SFTRunConfig", "SFTRunResult", "TokenCounter", "cpu_threads",
           "check_outputs", "make_pipeline_task", "run_sft"]

TASK_SETTINGS: dict[str, dict[str, Any]] = {
    "sort": dict(min_len=2, max_len=8, base_skill=0.5),
    "markov": dict(n_words=20, branching=20, max_new_tokens=10, beta=1.0),
}
"""Constructor arguments of each task as the pipelines use it (module docstring)."""
TASK_TRAINING: dict[str, dict[str, Any]] = {
    "sort": dict(labelled_sequences=200, updates=600, lr=1e-3, pretrain_sequences=4000, pretrain_updates=800,
                 n_eval=1000),
    "markov": dict(labelled_sequences=4000, updates=300, lr=3e-4, pretrain_sequences=4000, pretrain_updates=800,
                   n_eval=1000),
}
"""Fine-tuning defaults per task (module docstring)."""
ALGOS = ("bc", "dagger")


def make_pipeline_task(name: str) -> Task:
    """``make_task(name, **TASK_SETTINGS[name])``; an unknown name is a ValueError naming ``task``."""
    if name not in TASK_SETTINGS or name not in TASKS:
        raise ValueError(f"task: unknown task {name!r}; valid: {sorted(TASK_SETTINGS)}")
    return make_task(name, **TASK_SETTINGS[name])


def _choice(value: str, valid: Any, name: str, what: str) -> None:
    if value not in valid:
        raise ValueError(f"{name}: unknown {what} {value!r}; valid: {sorted(valid)}")


@dataclass(frozen=True)
class SFTRunConfig:
    """One ``llmtrack sft`` run."""

    task: str = "sort"
    """Task name: "sort" or "markov" (settings in ``TASK_SETTINGS``)."""
    size: str = "nano"
    """Model size preset: "nano", "small" or "base" (``llmtrack.models.PRESETS``)."""
    algo: str = "dagger"
    """"bc" (SFT on demonstrations) or "dagger" (on-policy distillation)."""
    family: str = "gpt2"
    """Model family: "gpt2" or "llama"."""
    seed: int = 0
    """Seeds the base model, its corpus, the labelled data and the minibatches (evaluation prompts stay fixed)."""
    checkpoint: str | None = None
    """Start from this local causal-LM checkpoint instead of the cached base model."""
    labelled_sequences: int | None = None
    """N: responses labelled by the expert, the same for both algorithms (None: the task's ``TASK_TRAINING``)."""
    dagger_iterations: int = 4
    """DAgger rounds."""
    dagger_demo_fraction: float = 0.2
    """Share of N that DAgger spends on demonstrations before its first roll-in."""
    updates: int | None = None
    """BC updates in all, the same for both algorithms (DAgger: split evenly over its rounds; None: task default)."""
    batch_size: int = 64
    """Sequences per BC minibatch."""
    lr: float | None = None
    """Adam learning rate of fine-tuning (None: task default)."""
    pretrain_sequences: int | None = None
    """Base-generator samples the base model is pre-trained on (None: task default, 4000)."""
    pretrain_updates: int | None = None
    """BC updates of pre-training, minibatches of 64 at 3e-3 (None: task default, 800)."""
    n_eval: int | None = None
    """Own generations (and expert samples) per evaluation (None: task default, 1000)."""
    device: str = "cpu"
    """"cpu" (bit-reproducible), "cuda" or "auto"."""
    threads: int | None = None
    """torch CPU threads during the run (None: 1 for "nano", whose matrix products are too small to gain
    from more and whose extra threads only spin against other processes on a shared CPU; else torch's default)."""
    cache_dir: str | None = None
    """Cache root for base models (default $LLMTRACK_CACHE or ~/.cache/llmtrack)."""
    out: str | None = None
    """Save the fine-tuned model to this folder (atomically); None: do not save. A missing or empty folder,
    or one holding a model llmtrack saved, is fine; anything else is refused unless ``force``."""
    force: bool = False
    """Allow ``out`` to be a non-empty folder llmtrack did not write: the model's files go in beside what
    is there (files with a model file's name are replaced, nothing else is touched)."""
    progress: bool = False
    """Progress bars for pre-training and fine-tuning."""

    def __post_init__(self) -> None:
        from minirl.checks import check_device, check_int, check_number, check_seed, check_threads

        for name in ("task", "size", "algo", "family"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: must be a name (a string), got {getattr(self, name)!r}")
        _choice(self.task, TASK_SETTINGS, "task", "task")
        for name, value in TASK_TRAINING[self.task].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        _choice(self.size, PRESETS, "size", "size preset")
        _choice(self.algo, ALGOS, "algo", "algorithm")
        _choice(self.family, FAMILIES, "family", "model family")
        if self.threads is not None:
            check_threads(self.threads, "threads")  # at most the CPUs this process may use
        check_seed(self.seed)
        for name, minimum in (("labelled_sequences", 1), ("dagger_iterations", 1), ("updates", 1),
                              ("batch_size", 1), ("pretrain_sequences", 1), ("pretrain_updates", 1), ("n_eval", 2)):
            check_int(getattr(self, name), name, minimum)
        if not 0.0 <= check_number(self.dagger_demo_fraction, "dagger_demo_fraction") < 1.0:
            raise ValueError(f"dagger_demo_fraction: must be in [0, 1), got {self.dagger_demo_fraction}")
        if self.sequences_per_iteration < 1:
            raise ValueError(f"labelled_sequences: {self.labelled_sequences} leaves no student generations for "
                             f"{self.dagger_iterations} DAgger rounds")
        check_number(self.lr, "lr", 0.0, strict_minimum=True)
        check_device(self.device, "device")  # a device this machine has, before any work
        task = make_pipeline_task(self.task)
        if task.context_size > PRESETS[self.size].max_positions:
            raise ValueError(f"size: preset {self.size!r} has too few positions for task {self.task!r}")
        if self.checkpoint is not None:
            config = check_checkpoint(self.checkpoint, field="checkpoint")
            vocab = getattr(config, "vocab_size", None)
            if vocab != task.vocab_size:
                raise ValueError(f"checkpoint: {self.checkpoint!r} has a vocabulary of {vocab} tokens; "
                                 f"task {self.task!r} needs {task.vocab_size}")
            tokenizer = check_checkpoint_tokenizer(self.checkpoint, "checkpoint", task.vocab_size)  # pad != EOS, layout
            check_same_tokens(tokenizer, task.tokenizer, "checkpoint", f"task {self.task!r}")
            positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", 0)
            if positions < task.context_size:
                raise ValueError(f"checkpoint: {self.checkpoint!r} has {positions} positions; "
                                 f"task {self.task!r} needs {task.context_size}")

    # -- equal data -----------------------------------------------------------------------------
    @property
    def sequences_per_iteration(self) -> int:
        n_demos = round(self.dagger_demo_fraction * self.labelled_sequences)
        return (self.labelled_sequences - n_demos) // self.dagger_iterations

    @property
    def dagger_demos(self) -> int:
        """Demonstrations of DAgger's D_demo: what the rounds leave of N, so the total is exactly N."""
        return self.labelled_sequences - self.dagger_iterations * self.sequences_per_iteration

    def sft_config(self) -> SFTConfig:
        bc = BCConfig(n_updates=self.updates, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                      progress=self.progress)
        return SFTConfig(n_demos=self.labelled_sequences, bc=bc, seed=self.seed + 1)

    def distill_config(self) -> DistillConfig:
        bc = BCConfig(n_updates=max(1, self.updates // self.dagger_iterations), batch_size=self.batch_size,
                      lr=self.lr, seed=self.seed)
        dagger = on_policy_dagger(n_iterations=self.dagger_iterations, episodes_per_iteration=self.sequences_per_iteration,
                                  bc=bc, seed=self.seed + 2, progress=self.progress)  # roll-outs: one past the demos
        return DistillConfig(n_demos=self.dagger_demos, dagger=dagger, seed=self.seed + 1)

    def pretrain_bc(self) -> BCConfig:
        return BCConfig(n_updates=self.pretrain_updates, batch_size=64, lr=3e-3, seed=self.seed,
                        progress=self.progress)

    def base_model(self) -> BaseModel:
        """Which base model this run fine-tunes (unless ``checkpoint`` is given)."""
        return BaseModel(self.size, self.family, self.seed, self.pretrain_sequences, self.pretrain_bc(), self.device)


@contextmanager
def cpu_threads(config: SFTRunConfig) -> Iterator[None]:
    """Run with ``config.threads`` torch CPU threads (see the field), restoring the previous count after."""
    n = config.threads if config.threads is not None else (1 if config.size == "nano" else None)
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TokenCounter:
    """Counts the real (non-filler) tokens of every forward pass that builds a graph, i.e. training.

    A forward pre-hook on the HuggingFace model; generation runs under ``no_grad`` and is not counted.
    """

    def __init__(self, policy: LMPolicy):
        self.tokens = 0
        self._handle = policy.model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        if torch.is_grad_enabled():
            mask = kwargs.get("attention_mask")
            self.tokens += int(mask.sum()) if mask is not None else int(kwargs["input_ids"].numel())

    def close(self) -> None:
        self._handle.remove()


@dataclass
class SFTRunResult:
    """What a run measured; ``summary()`` is the CLI's JSON."""

    config: SFTRunConfig
    params: int
    train_tokens: int
    train_s: float
    metrics: dict[str, Any]
    base: dict[str, Any]
    history: dict[str, list[float]]
    checkpoint_out: str | None
    wall_s: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """A flat JSON-ready dict (None where a number is undefined or infinite)."""
        c = self.config
        out: dict[str, Any] = {
            "task": c.task, "size": c.size, "algo": c.algo, "family": c.family, "seed": c.seed,
            "params": self.params, "labelled_sequences": c.labelled_sequences,
            "dagger_demos": c.dagger_demos if c.algo == "dagger" else None,
            "dagger_iterations": c.dagger_iterations if c.algo == "dagger" else None,
            "updates": c.updates, "train_tokens": self.train_tokens, "train_s": round(self.train_s, 3),
            "train_tokens_per_s": round(self.train_tokens / max(self.train_s, 1e-9), 1),
        }
        for key, value in self.metrics.items():
            out[key] = _json_number(value)
        out["base"] = self.base
        out["checkpoint_out"] = self.checkpoint_out
        out["notes"] = self.notes
        out["wall_s"] = round(self.wall_s, 3)
        return out

    def table(self) -> str:
        """A short human-readable report."""
        s = self.summary()
        c = self.config

        def fmt(key: str) -> str:
            v, se = s.get(key), s.get(f"{key}_se")
            if v is None:
                return "undefined"
            return f"{v:.4f}" + (f" +- {se:.4f}" if isinstance(se, float) else "")

        lines = [
            f"llmtrack sft: task={c.task} size={c.size} family={c.family} algo={c.algo} seed={c.seed} "
            f"({s['params']:,} parameters)",
            f"  base: {'loaded from cache' if s['base'].get('cached') else s['base'].get('source', 'pre-trained')} "
            f"({s['base'].get('pretrain_s', 0.0):.1f} s)",
            f"  fine-tuning: {c.labelled_sequences} labelled sequences, {c.updates} updates, "
            f"{s['train_tokens']:,} tokens in {s['train_s']:.1f} s ({s['train_tokens_per_s']:,.0f} tokens/s)",
            f"  expert accuracy on own generations: {fmt('expert_accuracy')} (greedy: {fmt('expert_accuracy_greedy')})",
            f"  forward KL(d_expert || d_model): {fmt('forward_kl')}   "
            f"reverse KL(d_model || d_expert): {fmt('reverse_kl')}",
            f"  gold reward: {fmt('gold_reward')}",
        ]
        if "mistakes_by_length" in s:
            by = s["mistakes_by_length"]
            lines.append("  mistakes per sequence by list length (survey eq. 1): "
                         + ", ".join(f"{n}: {m:.2f}" for n, m in by.items()))
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  wall time {s['wall_s']:.1f} s")
        return "\n".join(lines)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_number(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value


def _notes(task: Task, metrics: dict[str, Any]) -> list[str]:
    notes = []
    if task.name == "sort":
        notes.append("sort's expert is deterministic: forward_kl = E[-log d_model(y*|x)] (the NLL of the sorted "
                     "answer); reverse_kl is +inf (reported null) whenever the model can sample a wrong answer, "
                     f"which it did for a fraction {metrics['reverse_kl_off_support']:.3f} of its generations")
    elif metrics.get("reverse_kl") is None:
        notes.append("reverse_kl is +inf (null): the model sampled responses the expert gives probability 0")
    if task.name == "markov":
        notes.append("markov's expert is stochastic: expert_accuracy is the mean probability the expert gives the "
                     f"model's tokens (the expert itself scores {metrics['expert_accuracy_reference']:.4f})")
    return notes


def run_sft(config: SFTRunConfig = SFTRunConfig()) -> SFTRunResult:
    """Run the recipe (module docstring). Deterministic on the CPU given the config (timings aside)."""
    with cpu_threads(config):
        return _run_sft(config)


def check_outputs(config: SFTRunConfig) -> None:
    """Refuse, before any work, an ``out`` we may not write to and a cache root we cannot write in."""
    if config.out is not None:
        check_model_out(config.out, "out", force=config.force)
    if config.checkpoint is None:
        check_output_dir(cache_root(config.cache_dir), "cache_dir" if config.cache_dir else "LLMTRACK_CACHE")


def _run_sft(config: SFTRunConfig) -> SFTRunResult:
    start = time.perf_counter()
    check_outputs(config)
    task = make_pipeline_task(config.task)
    t0 = time.perf_counter()
    if config.checkpoint is not None:
        policy = LMPolicy(load_model(config.checkpoint, field="checkpoint"), device=config.device)
        base = {"source": str(config.checkpoint), "cached": False}
    else:
        spec = config.base_model()
        path = spec.checkpoint_path(task, config.cache_dir)
        cached = (path / DESCRIPTION).is_file()
        policy = spec.build(task, config.cache_dir)
        base = {"source": "pretrained", "cached": cached, "path": str(path)}
    base["pretrain_s"] = round(time.perf_counter() - t0, 3)

    counter = TokenCounter(policy)
    t0 = time.perf_counter()
    try:
        if config.algo == "bc":
            _, history = sft(policy, task, config.sft_config())
        else:
            _, history = distill(policy, task, config.distill_config())
    finally:
        counter.close()
    train_s = time.perf_counter() - t0

    metrics = evaluate(policy, task, EvalConfig(n_sequences=config.n_eval))
    out = None
    if config.out is not None:
        out = str(save_model(policy.model, config.out, tokenizer=task.tokenizer, force=config.force))
    return SFTRunResult(config=config, params=count_parameters(policy.model), train_tokens=counter.tokens,
                        train_s=train_s, metrics=metrics, base=base, history=history, checkpoint_out=out,
                        wall_s=time.perf_counter() - start, notes=_notes(task, metrics))
