"""Exposure bias on language models: SFT (BC) vs on-policy distillation (DAgger) at equal labelled data.

The LLM version of :mod:`minirl.experiments.compounding_error` (survey §2.4, eq. 1, Theorems
2.1 / 2.3; docs/equations.md §3, §7). A tiny base model is pre-trained on the task's base generator
(:func:`llmtrack.pipelines.base.pretrain_base`); from it, with the same number N of
expert-labelled sequences and the same number of BC updates,
    SFT     BC on N expert demonstrations (the expert's states only)
    DAgger  on-policy distillation: the expert labels the student's own generations
            (:func:`llmtrack.pipelines.imitation.distill`)
and all three models are measured on their **own** generations (:mod:`llmtrack.pipelines.evaluate`):

sort   mistakes against the expert's labels per sequence vs list length n (survey eq. 1; the
       horizon is n + 1), split into how often a generation slips at all (``slip_rate``) and
       how many further mistakes a first one costs (``mistakes_after_first``: the compounding),
       plus per-token expert accuracy, sampled and greedy.
markov forward KL(d^beta || d^pi) and reverse KL(d^pi || d^beta) of the whole response,
       Monte-Carlo with the expert's exact log-probs, for base, SFT and DAgger.

What to expect. Theorem 2.3 bounds DAgger's mistakes by T eps_N, where eps_N is the error of
the best policy *in the class* on DAgger's aggregate data -- data gathered on the states of its
own, early and weak, students. The theorem says nothing about how eps_N compares with SFT's eps
on clean demonstrations at equal data. The experiment reports both halves: mistakes_after_first
(what DAgger is meant to fix) and slip_rate (what spending labels off the clean path may cost).

Measured over seeds, with the runs that ruled out other explanations (list lengths, budgets, DAgger's
roll-in, the model family): docs/results/language_models.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from minirl.checks import MAX_SEEDS, SEED_LIMIT, check_int, check_seed
from llmtrack.pipelines.evaluate import EvalConfig, evaluate
from llmtrack.pipelines.recipe import SFTRunConfig, cpu_threads, make_pipeline_task, run_sft

__all__ = ["ExposureBiasConfig", "ExposureBiasResult", "run_exposure_bias", "MODELS", "TASKS"]

MODELS = ("base", "bc", "dagger")
TASKS = ("sort", "markov")
_KEYS = ("expert_accuracy", "expert_accuracy_greedy", "mistakes", "slip_rate", "mistakes_after_first",
         "forward_kl", "forward_kl_se", "reverse_kl", "reverse_kl_se", "gold_reward")


@dataclass(frozen=True)
class ExposureBiasConfig:
    """Settings of the exposure-bias experiment (training settings: ``SFTRunConfig`` and its task defaults)."""

    size: str = "nano"
    """Model size preset."""
    family: str = "gpt2"
    """Model family: "gpt2" or "llama"."""
    n_seeds: int = 2
    """Independent repetitions (base model, data, training); seed k uses seed + k."""
    seed: int = 0
    """Base seed."""
    n_eval: int = 1000
    """Own generations per evaluation."""
    tasks: tuple[str, ...] = TASKS
    """Which tasks to run."""
    device: str = "cpu"
    """"cpu" (reproducible), "cuda" or "auto"."""
    cache_dir: str | None = None
    """Cache root for base models."""
    progress: bool = False
    """Progress bar over (seed, task, model)."""

    def __post_init__(self) -> None:
        check_int(self.n_seeds, "n_seeds", 1, MAX_SEEDS)  # each seed is a full run: a typo must not run for days
        check_seed(self.seed)
        if self.seed + self.n_seeds > SEED_LIMIT:
            raise ValueError(f"seed: seed + n_seeds - 1 = {self.seed + self.n_seeds - 1} must stay below 2**32")
        if isinstance(self.tasks, str) or not self.tasks or any(t not in TASKS for t in self.tasks):
            raise ValueError(f"tasks: must be a non-empty subset of {TASKS}, got {self.tasks!r}")
        for task in self.tasks:  # validates size, family and everything else before any work
            self.run_config(task, "bc", self.seed)

    def run_config(self, task: str, algo: str, seed: int) -> SFTRunConfig:
        return SFTRunConfig(task=task, size=self.size, algo=algo, family=self.family, seed=seed, n_eval=self.n_eval,
                            device=self.device, cache_dir=self.cache_dir)


@dataclass
class ExposureBiasResult:
    """Metrics per task, model and seed: ``metrics[task][model][k]`` is :func:`evaluate`'s dict."""

    config: ExposureBiasConfig
    metrics: dict[str, dict[str, list[dict[str, Any]]]]
    labelled_sequences: dict[str, int]
    wall_s: float

    def mean(self, task: str, model: str, key: str) -> float | None:
        """Mean over seeds of one metric (None if undefined for any seed)."""
        values = [m.get(key) for m in self.metrics[task][model]]
        if any(v is None or not np.isfinite(v) for v in values):
            return None
        return float(np.mean(values))

    def mistakes_by_length(self, model: str) -> tuple[list[int], np.ndarray]:
        """(list lengths, mean mistakes per sequence over seeds (n_seeds, n_lengths)) on sort."""
        rows = self.metrics["sort"][model]
        lengths = sorted({int(n) for m in rows for n in m["mistakes_by_length"]})
        table = np.array([[m["mistakes_by_length"].get(n, np.nan) for n in lengths] for m in rows])
        return lengths, table

    def summary(self) -> dict[str, Any]:
        """A JSON-ready dict: per task and model, means over seeds (and per-seed expert accuracy)."""
        out: dict[str, Any] = {"size": self.config.size, "family": self.config.family, "n_seeds": self.config.n_seeds,
                               "labelled_sequences": self.labelled_sequences}
        for task in self.metrics:
            out[task] = {}
            for model in MODELS:
                entry = {key: self.mean(task, model, key) for key in _KEYS}
                entry["expert_accuracy_per_seed"] = [m["expert_accuracy"] for m in self.metrics[task][model]]
                if task == "sort":
                    lengths, table = self.mistakes_by_length(model)
                    entry["mistakes_by_length"] = dict(zip(lengths, np.nanmean(table, 0).round(4).tolist()))
                out[task][model] = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in entry.items()}
        out["wall_s"] = round(self.wall_s, 2)
        return out

    def table(self) -> str:
        """Plain-text tables of the measurements."""
        s = self.summary()
        lines = [f"Exposure bias, {self.config.size} {self.config.family}, {self.config.n_seeds} seed(s), "
                 f"equal labelled sequences per task {self.labelled_sequences}; means over seeds"]

        def f(v: Any, width: int = 8, digits: int = 4) -> str:
            return f"{v:>{width}.{digits}f}" if isinstance(v, float) else f"{'inf' if v is None else v:>{width}}"

        if "sort" in s:
            lines.append("sort (own generations; mistakes = survey eq. 1 per sequence)")
            lines.append(f"{'model':>7} | {'accuracy':>8} {'greedy':>8} | {'mistakes':>8} {'slip rate':>9} "
                         f"{'after 1st':>9} | mistakes by list length")
            for model in MODELS:
                e = s["sort"][model]
                by = " ".join(f"{n}:{m:.2f}" for n, m in e["mistakes_by_length"].items())
                lines.append(f"{model:>7} | {f(e['expert_accuracy'])} {f(e['expert_accuracy_greedy'])} | "
                             f"{f(e['mistakes'])} {f(e['slip_rate'], 9)} {f(e['mistakes_after_first'], 9)} | {by}")
        if "markov" in s:
            lines.append("markov (nats per response; Monte-Carlo with exact expert log-probs)")
            lines.append(f"{'model':>7} | {'KL(d_exp||d_pi)':>16} | {'KL(d_pi||d_exp)':>16} | {'gold reward':>11}")
            for model in MODELS:
                e = s["markov"][model]
                lines.append(f"{model:>7} | {f(e['forward_kl'], 7)} +- {f(e['forward_kl_se'], 6)} | "
                             f"{f(e['reverse_kl'], 7)} +- {f(e['reverse_kl_se'], 6)} | {f(e['gold_reward'], 11)}")
        lines.append(f"wall time {self.wall_s:.1f} s")
        return "\n".join(lines)


def run_exposure_bias(config: ExposureBiasConfig = ExposureBiasConfig()) -> ExposureBiasResult:
    """Run the experiment (module docstring). Deterministic on the CPU given ``config.seed``."""
    start = time.perf_counter()
    metrics: dict[str, dict[str, list[dict[str, Any]]]] = {t: {m: [] for m in MODELS} for t in config.tasks}
    labelled = {}
    jobs = [(k, t, m) for k in range(config.n_seeds) for t in config.tasks for m in MODELS]
    for k, task_name, model in tqdm(jobs, desc="exposure bias", disable=not config.progress):
        seed = config.seed + k
        if model == "base":
            run = config.run_config(task_name, "bc", seed)
            task = make_pipeline_task(task_name)
            with cpu_threads(run):  # as run_sft does: same thread count, same cached base
                policy = run.base_model().build(task, run.cache_dir)
                metrics[task_name][model].append(evaluate(policy, task, EvalConfig(n_sequences=config.n_eval)))
        else:
            run = config.run_config(task_name, model, seed)
            labelled[task_name] = run.labelled_sequences
            metrics[task_name][model].append(run_sft(run).metrics)
    return ExposureBiasResult(config=config, metrics=metrics, labelled_sequences=labelled,
                              wall_s=time.perf_counter() - start)
