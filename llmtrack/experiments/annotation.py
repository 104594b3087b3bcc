"""Few, ambiguous annotations: where the classification objective beats Bradley-Terry, and why.

Survey §4.1 (Sun et al. 2024b; docs/equations.md §5). A sweep on the frozen linear head of
:mod:`llmtrack.experiments.reward_noise` (same base models; 500 full-batch Adam steps, lr 5e-2, no
penalty) over the number of pairs and two label models (:func:`minirl.preferences.label_pairs`):

    "flip"          the noiseless gold order, then each label flipped with probability p
    "temperature"   Sun et al.'s ambiguous annotator, P(y_a chosen) = sigmoid((R_a - R_b) / T): its errors
                    concentrate on close pairs

and three objectives: BT, classification, and "bt+ridge" (BT with an L2 penalty, Adam ``weight_decay``).
Besides held-out accuracy and correlation, ``bon{N}`` is the gold reward of the candidate the model ranks
first among N base-generator samples of a prompt (:func:`minirl.algos.best_of_n.best_of_first_n`). Design:
for one seed and pair count every label model labels the same pairs, so the objectives' differences are
paired by seed.

Why classification can win: it is Bradley-Terry plus a penalty. Expanding both losses to second order in
the scores (the regime of noisy labels, where scores stay small), with r = 2v:

    L_cls(2v) = L_BT(v) + E[(v(y_a) + v(y_b))^2] / 8 + O(v^4)

(log sigma(z) = -log 2 + z/2 - z^2/8 + ..., and a^2 + b^2 = ((a - b)^2 + (a + b)^2) / 2): the classification
objective is BT with a ridge on each pair's *summed* score, i.e. on the directions of the features that move
both responses of a pair together (length, prompt) and that BT's difference-only loss leaves unconstrained.
There BT's fit is pure variance -- noisy labels and few pairs make it large -- so the penalty helps; with
clean labels and many pairs its bias costs. A tuned L2 penalty on BT gets the same gain ("bt+ridge"). The
measured table, with its command: docs/results/alignment.md.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from minirl.algos.best_of_n import best_of_first_n
from minirl.algos.reward_model import OBJECTIVES, LinearRewardModel, RewardModelConfig, train_reward_model
from minirl.checks import check_int, check_number, check_probability
from minirl.data import TrajectoryBatch
from minirl.estimators import correlation, pair_accuracy
from llmtrack.experiments.reward_noise import (EVAL_SEED, TRAIN_SEED, RewardNoiseConfig, check_rm_config,
                                               check_sweep_seeds)
from llmtrack.pipelines.recipe import SFTRunConfig, cpu_threads, make_pipeline_task
from llmtrack.reward_model import FrozenLMFeatures
from llmtrack.rollout import generate

__all__ = ["AnnotationConfig", "run_annotation_sweep", "annotation_table", "summarize_annotation", "LABEL_MODELS",
           "ANNOTATION_METRICS"]

LABEL_MODELS = ("flip", "temperature")
ANNOTATION_METRICS = ("accuracy", "correlation", "bon16", "bon64")


@dataclass(frozen=True)
class AnnotationConfig:
    """Settings of the annotation sweep (:func:`run_annotation_sweep`): the frozen linear head, few pairs, two
    label-noise models, BT vs classification vs BT with an L2 penalty."""

    pair_counts: tuple[int, ...] = (100, 400, 1000, 4000)
    """Training pairs. For one seed and count, every label model labels the same pairs."""
    flips: tuple[float, ...] = (0.0, 0.3, 0.4)
    """Label models "flip": noiseless gold order, then each label flipped with this probability."""
    temperatures: tuple[float, ...] = (4.0, 8.0)
    """Label models "temperature" (ambiguous annotation): P(y_a chosen) = sigmoid((R_a - R_b) / T), no flips."""
    objectives: tuple[str, ...] = ("bt", "classification")
    """Reward-model objectives (``minirl.algos.reward_model.OBJECTIVES``)."""
    ridge: float = 1e-2
    """L2 weight (Adam ``weight_decay``) of an extra "bt+ridge" line, BT with an explicit penalty; 0 = no such line."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Each seed: its own base model, training pairs and labels, held-out data."""
    n_eval_pairs: int = 2000
    """Held-out pairs, ordered by the noiseless gold reward."""
    n_eval_samples: int = 2000
    """Held-out base-generator samples for the correlation."""
    bon_prompts: int = 400
    """Prompts of the best-of-N evaluation; each has max(bon_sizes) base-generator candidates."""
    bon_sizes: tuple[int, ...] = (16, 64)
    """N of best-of-N: the gold reward of the candidate the reward model ranks first among the first N."""
    linear: RewardModelConfig = RewardModelConfig(n_updates=500, lr=5e-2)
    """Training of the linear head, full-batch (objective, seed and weight_decay set per run)."""
    size: str = "nano"
    """Model size preset of the base model."""
    family: str = "gpt2"
    """Model family: "gpt2" or "llama"."""
    fast: bool = False
    """Tests: the base model of ``RewardNoiseConfig(fast=True)``, 300 held-out pairs and samples, 40 best-of-N prompts."""
    device: str = "cpu"
    """Where the frozen LM computes the features: "cpu" (reproducible), "cuda" or "auto"."""
    cache_dir: str | None = None
    """Cache root for base models."""
    progress: bool = False
    """Progress bar over runs."""

    def __post_init__(self) -> None:
        def check(name: str, ok: Callable[[Any], bool], what: str) -> None:
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values or any(isinstance(v, bool) or not ok(v) for v in values):
                raise ValueError(f"{name}: must be a non-empty tuple of {what}, got {values!r}")

        check("pair_counts", lambda v: isinstance(v, int) and v >= 2, "integers >= 2")
        check_sweep_seeds(self.seeds)
        check("bon_sizes", lambda v: isinstance(v, int) and v >= 1, "integers >= 1")
        for name in ("flips", "temperatures"):  # either may be empty, not both
            values = getattr(self, name)
            if not isinstance(values, tuple):
                raise ValueError(f"{name}: must be a tuple of numbers, got {values!r}")
        for p in self.flips:
            check_probability(p, "flips")
        for t in self.temperatures:
            check_number(t, "temperatures", 0.0, strict_minimum=True)
        if not self.flips and not self.temperatures:
            raise ValueError("flips: flips and temperatures are both empty; give at least one label model")
        if not isinstance(self.objectives, (tuple, list)) or not self.objectives \
                or any(not isinstance(o, str) or o not in OBJECTIVES for o in self.objectives):
            raise ValueError(f"objectives: must be a non-empty subset of {sorted(OBJECTIVES)}, got {self.objectives!r}")
        if check_number(self.ridge, "ridge", 0.0) >= 1e3:
            raise ValueError(f"ridge: must be a number in [0, 1000), got {self.ridge!r}")
        for name in ("n_eval_pairs", "n_eval_samples", "bon_prompts"):
            check_int(getattr(self, name), name, 2)
        check_rm_config(self.linear, "linear")
        self.run_config(self.seeds[0])  # validates size, family, device before any work

    def run_config(self, seed: int) -> SFTRunConfig:
        """The base model's ``llmtrack sft`` settings (the cache entry of the label-noise sweep's)."""
        return RewardNoiseConfig(size=self.size, family=self.family, fast=self.fast, device=self.device,
                                 cache_dir=self.cache_dir, seeds=(seed,)).run_config(seed)

    @property
    def label_models(self) -> list[tuple[str, float]]:
        return [("flip", float(p)) for p in self.flips] + [("temperature", float(t)) for t in self.temperatures]

    @property
    def eval_budgets(self) -> tuple[int, int, int]:
        """(n_eval_pairs, n_eval_samples, bon_prompts) after ``fast``."""
        return (300, 300, 40) if self.fast else (self.n_eval_pairs, self.n_eval_samples, self.bon_prompts)


def _features(features: FrozenLMFeatures, batch: TrajectoryBatch, chunk: int = 2048) -> Tensor:
    """phi of every sequence of ``batch``, (B, d), computed once (the eval sets are scored by many heads)."""
    return torch.cat([features(batch[torch.arange(i, min(i + chunk, batch.batch_size))])
                      for i in range(0, batch.batch_size, chunk)])


def run_annotation_sweep(config: AnnotationConfig = AnnotationConfig()) -> list[dict[str, Any]]:
    """Run the annotation sweep (module docstring); one row per
    (seed, n_pairs, label model, objective). Deterministic on the CPU: same config, same numbers.

    Each row: seed, n_pairs, label_model ("flip" | "temperature"), level (flip probability or
    temperature), objective ("bt", "classification", or "bt+ridge"), label_accuracy (share of
    training labels agreeing with the gold order), accuracy, correlation, bon{N} per ``bon_sizes``,
    bon{N}_oracle and bon{N}_random (the gold best and mean of the same candidates), train_s.
    """
    task = make_pipeline_task("markov")
    n_eval_pairs, n_eval_samples, bon_prompts = config.eval_budgets
    runs = list(config.objectives) + (["bt+ridge"] if config.ridge > 0 else [])
    total = len(config.seeds) * len(config.pair_counts) * len(config.label_models) * len(runs)
    bar = tqdm(total=total, desc="annotation", disable=not config.progress)
    rows: list[dict[str, Any]] = []
    n_max = max(config.bon_sizes)
    for seed in config.seeds:
        run = config.run_config(seed)
        with cpu_threads(run):
            base = run.base_model().build(task, run.cache_dir)
            features = FrozenLMFeatures(base, device=run.device)
            held_out = task.preferences(n_eval_pairs, noise=0.0, seed=EVAL_SEED + seed)
            samples = task.rollout(task.base, n_eval_samples, seed=EVAL_SEED + seed + 1)
            g = torch.Generator().manual_seed(EVAL_SEED + seed + 3)
            candidates = generate(task.base, [p for p in task.sample_prompts(bon_prompts, g) for _ in range(n_max)],
                                  task.max_new_tokens, generator=g)
            ev = {"held_c": _features(features, held_out.chosen), "held_r": _features(features, held_out.rejected),
                  "samples": _features(features, samples), "bon": _features(features, candidates)}
            gold = {"held_c": task.gold_reward(held_out.chosen).double(),
                    "held_r": task.gold_reward(held_out.rejected).double(),
                    "samples": task.gold_reward(samples).double(),
                    "bon": task.gold_reward(candidates).double().view(bon_prompts, n_max)}
            for n_pairs in config.pair_counts:
                for label_model, level in config.label_models:
                    # same seed for every label model: the same pairs, only the labels differ
                    train = task.preferences(n_pairs, seed=TRAIN_SEED + seed,
                                             noise=level if label_model == "flip" else 0.0,
                                             temperature=level if label_model == "temperature" else 0.0)
                    label_accuracy = float((task.gold_reward(train.chosen) > task.gold_reward(train.rejected))
                                           .double().mean())
                    for name in runs:
                        start = time.perf_counter()
                        objective, decay = ("bt", float(config.ridge)) if name == "bt+ridge" else (name, 0.0)
                        model = LinearRewardModel(features, features.dim)
                        train_reward_model(model, train, dataclasses.replace(
                            config.linear, objective=objective, seed=seed, weight_decay=decay))
                        w = model.w.detach().double()
                        score = {k: v.double() @ w for k, v in ev.items()}
                        row = {"seed": seed, "n_pairs": n_pairs, "label_model": label_model, "level": level,
                               "objective": name, "label_accuracy": label_accuracy,
                               "accuracy": pair_accuracy(score["held_c"], score["held_r"], gold["held_c"],
                                                         gold["held_r"]),
                               "correlation": correlation(score["samples"], gold["samples"])}
                        bon_scores = score["bon"].view(bon_prompts, n_max)
                        for n in config.bon_sizes:
                            row[f"bon{n}"] = best_of_first_n(bon_scores, gold["bon"], n)
                            row[f"bon{n}_oracle"] = best_of_first_n(gold["bon"], gold["bon"], n)
                            row[f"bon{n}_random"] = float(gold["bon"][:, :n].mean())
                        row["train_s"] = time.perf_counter() - start
                        rows.append(row)
                        bar.update()
    bar.close()
    return rows


def summarize_annotation(rows: list[dict[str, Any]], baseline: str = "bt") -> list[dict[str, Any]]:
    """One entry per (n_pairs, label model, objective), in the rows' order: each metric's mean over seeds and,
    for objectives other than ``baseline``, ``{metric}_diff`` and ``{metric}_diff_se``, the difference to
    ``baseline`` paired by seed (mean, standard error; NaN with one seed)."""
    metrics = ["accuracy", "correlation"] + [k for k in rows[0] if k.startswith("bon") and k[3:].isdigit()]
    groups: dict[tuple[int, str, float], dict[str, dict[int, dict[str, Any]]]] = {}
    for r in rows:
        groups.setdefault((r["n_pairs"], r["label_model"], r["level"]), {}).setdefault(r["objective"], {})[
            r["seed"]] = r
    out = []
    for (n_pairs, label_model, level), by_objective in groups.items():
        for objective, by_seed in by_objective.items():
            entry: dict[str, Any] = {"n_pairs": n_pairs, "label_model": label_model, "level": level,
                                     "objective": objective, "n_seeds": len(by_seed),
                                     "label_accuracy": float(np.mean([r["label_accuracy"] for r in by_seed.values()]))}
            for m in metrics:
                entry[m] = float(np.mean([r[m] for r in by_seed.values()]))
                if objective != baseline and baseline in by_objective:
                    seeds = sorted(set(by_seed) & set(by_objective[baseline]))
                    diff = np.array([by_seed[s][m] - by_objective[baseline][s][m] for s in seeds])
                    entry[f"{m}_diff"] = float(diff.mean())
                    entry[f"{m}_diff_se"] = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
            out.append(entry)
    return out


def annotation_table(rows: list[dict[str, Any]], baseline: str = "bt") -> str:
    """Plain text: per (n_pairs, label model), each objective's metrics (mean over seeds) and, for the others,
    the difference to ``baseline`` paired by seed as mean +- standard error (``*``: beyond 2 se)."""
    summary = summarize_annotation(rows, baseline)
    metrics = ["accuracy", "correlation"] + [k for k in rows[0] if k.startswith("bon") and k[3:].isdigit()]
    n_seeds = max(e["n_seeds"] for e in summary)
    lines = [f"Frozen linear head, markov task, {n_seeds} seed(s): mean over seeds; [objective - {baseline}] "
             "paired by seed, mean +- se"]
    cell_key = None
    for e in summary:
        key = (e["n_pairs"], e["label_model"], e["level"])
        if key != cell_key:
            cell_key = key
            lines.append(f"n_pairs {e['n_pairs']}, {e['label_model']} {e['level']:g} "
                         f"(labels agree with gold: {e['label_accuracy']:.3f})")
        cells = []
        for m in metrics:
            cell = f"{m} {e[m]:7.3f}"
            if f"{m}_diff" in e:
                diff, se = e[f"{m}_diff"], e[f"{m}_diff_se"]
                mark = "*" if np.isfinite(se) and abs(diff) > 2 * se else " "
                cell += f" [{diff:+.3f} +- {se:.3f}{mark}]"
            cells.append(cell)
        lines.append(f"  {e['objective']:>14}: " + "  ".join(cells))
    return "\n".join(lines)
