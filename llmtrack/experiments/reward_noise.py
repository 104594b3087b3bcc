"""Reward models under label noise: Bradley-Terry vs classification, fine-tuned transformer vs linear head.

Seed §4.1, take-away (2), after Sun et al. 2024b: the classification objective (y+ is class 1,
y- class 0, each scored on its own) is order-consistent like Bradley-Terry and *more robust to
annotation noise*. docs/equations.md §5:

    BT               L = -E[log sigma(r(x, y+) - r(x, y-))]
    classification   L = -E[log sigma(r(x, y+)) + log sigma(-r(x, y-))] / 2

The sweep, on the markov task with the pipelines' settings (``TASK_SETTINGS["markov"]``): for each
seed, a nano base model is pre-trained as ``llmtrack sft`` does (cached); n preference pairs are
drawn from the base generator and labelled by the noiseless gold ordering, then each label is
flipped with probability ``noise``. The pairs are the same at every noise level and the flips are
nested (a label flipped at 0.1 is flipped at 0.2), so the rows of one seed differ only in the
flips. For each noise x objective x head:

    transformer  :class:`~llmtrack.reward_model.LMRewardModel` from a copy of the base model,
                 scalar head on the last real token, minibatch Adam (``transformer``)
    linear       :func:`~llmtrack.reward_model.frozen_linear_reward_model`: w . [sum_t h_t, 1] on
                 the frozen base model's hidden states, full-batch Adam (``linear``)

measured on held-out data (fresh seeds): ``accuracy`` against the *noiseless* gold ordering of
pairs from the base generator; ``correlation`` (Pearson) of the score with the gold reward on
base-generator samples, and ``correlation_expert`` on samples of the exact expert pi* (the kind
of responses a policy optimised against the reward model produces).

Measured (default config: nano GPT-2, 4000 pairs, seeds 0 / 1 / 2; held-out accuracy, BT vs
classification, means over seeds; ~15 min on one shared CPU core):

    noise          0.0            0.1            0.2            0.3            0.4
    transformer    0.862 / 0.837  0.815 / 0.813  0.773 / 0.754  0.715 / 0.703  0.625 / 0.611
    linear         0.835 / 0.831  0.832 / 0.833  0.829 / 0.827  0.806 / 0.810  0.722 / 0.727

Classification never beats Bradley-Terry by more than the seed-to-seed spread here. Paired by
seed (same pairs, same flips), its only wins on every seed are +0.004 accuracy for the linear
head at noise 0.3 and +0.035 base-sample correlation for the transformer at noise 0.4 (where
its accuracy is 0.014 lower); the transformer's BT lead at noise 0 (+0.025) holds on every
seed. What decides robustness here is the model, not the objective: the fine-tuned
transformer (~10 epochs) fits the flipped labels and loses 0.24 accuracy from noise 0 to 0.4,
the linear head on frozen features loses 0.11 and almost nothing up to 0.2. A one-epoch
transformer (63 updates) is worse at every noise level and still shows no classification win
(0.756 / 0.753 at noise 0, 0.596 / 0.593 at 0.4).

Few, ambiguous annotations (:func:`run_annotation_sweep`, :class:`AnnotationConfig`). A second
sweep on the frozen linear head (same base models, training as above: 500 full-batch Adam steps,
lr 5e-2, no penalty) over the number of pairs and two label models: "flip" as above, and
"temperature" -- Sun et al.'s ambiguous annotator, P(y_a chosen) = sigmoid((R_a - R_b) / T), whose
errors concentrate on close pairs. A third line, "bt+ridge", is BT with an L2 penalty (Adam
weight_decay 1e-2). Besides accuracy and correlation, ``bon{N}`` is the gold reward of the
candidate the model ranks first among N base-generator samples of a prompt (400 prompts; the
gold-picked best is ~2.3 at N = 16 and ~3.5 at N = 64, a random pick ~-0.14). Measured, seeds
0-4, classification - BT paired by seed, mean +- standard error (* beyond 2 se; ~4 min on one core):

    pairs  labels (agree w/ gold)  BT acc  cls - BT acc      cls - BT corr     cls - BT bon64
    100    flip 0.3   (0.72)       0.612   -0.011 +- 0.016   -0.042 +- 0.046   -0.22 +- 0.25
    100    temp 8     (0.53)       0.515   +0.021 +- 0.010*  +0.055 +- 0.033   +0.27 +- 0.14
    400    flip 0     (1.00)       0.811   +0.000 +- 0.006   -0.000 +- 0.008   +0.06 +- 0.02*
    400    flip 0.4   (0.59)       0.631   +0.008 +- 0.004*  +0.027 +- 0.017   +0.20 +- 0.08*
    400    temp 4     (0.61)       0.664   +0.016 +- 0.008*  +0.034 +- 0.008*  +0.12 +- 0.05*
    400    temp 8     (0.56)       0.587   +0.016 +- 0.006*  +0.046 +- 0.011*  +0.15 +- 0.07*
    1000   flip 0.4   (0.60)       0.659   +0.015 +- 0.010   +0.052 +- 0.024*  +0.19 +- 0.09*
    1000   temp 4     (0.59)       0.701   +0.023 +- 0.009*  +0.055 +- 0.019*  +0.12 +- 0.02*
    1000   temp 8     (0.54)       0.624   +0.007 +- 0.005   +0.027 +- 0.009*  +0.15 +- 0.05*
    4000   flip 0     (1.00)       0.843   -0.006 +- 0.002*  -0.006 +- 0.003*  -0.02 +- 0.01
    4000   flip 0.4   (0.60)       0.743   +0.014 +- 0.007*  +0.027 +- 0.012*  +0.12 +- 0.01*
    4000   temp 4     (0.59)       0.769   -0.010 +- 0.037   -0.029 +- 0.071   +0.15 +- 0.13

(``annotation_table`` prints every cell.) So there is a regime where classification wins: a
linear head on frozen embeddings, noisy labels (40% of labels against the gold order, or
temperature 4-8 at which 54-61% agree) and 400-1000 pairs; the win is ~0.02 accuracy, ~0.05
correlation and ~0.15 gold reward at best-of-64 (a 5-16% larger BoN gain over a random pick).
With clean labels BT is as good or better (n = 4000: -0.006 accuracy, every seed). At 100 pairs
the seed spread swamps either sign. Ambiguous (temperature) labels favour classification more
reliably than uniform flips at the same label accuracy.

Why: classification is Bradley-Terry plus a penalty. Expanding both losses to second order in the
scores (the regime of noisy labels, where scores stay small), with r = 2v:

    L_cls(2v) = L_BT(v) + E[(v(y_a) + v(y_b))^2] / 8 + O(v^4)

(log sigma(z) = -log 2 + z/2 - z^2/8 + ..., and a^2 + b^2 = ((a - b)^2 + (a + b)^2) / 2): the
classification objective is BT with a ridge on each pair's *summed* score, i.e. on the directions
of the features that move both responses of a pair together (length, prompt) and that BT's
difference-only loss leaves unconstrained. In those directions BT's unpenalised fit is pure
variance -- noise labels and few pairs make it large, clean labels and many pairs make it small,
where the penalty's bias costs classification its 0.006. Checked (scratch scan, 6-8 seeds, the
same features and training): BT with exactly that penalty added reproduces classification within
0.006 accuracy and 0.018 correlation in 23 of 24 (pairs x labels) cells (the 24th, 4000 pairs at
temperature 2: +0.016 +- 0.014, in BT-with-penalty's favour), and BT with a plain L2 penalty, its weight picked per cell from
{1e-4, 1e-3, 1e-2, 1e-1}, matches or beats classification in every cell (no cell where
classification leads by 2 se). In the table above the fixed "bt+ridge" line (weight 1e-2) sits
within 2 se of classification in every noisy cell at 400-1000 pairs and pays for it on clean
labels (-0.016 accuracy vs BT at 4000 pairs). The take-away is therefore "classification is a
built-in regulariser that helps under noisy labels", not an advantage of order consistency as
such: a tuned penalty on BT gets the same gain. The fine-tuned transformer of the first sweep was
not re-run in this regime; an MLP head on the same features trained to convergence (1000 full-
batch steps, seed 0, 4 cells) overfits both objectives (0.54-0.66 accuracy), BT ahead in all 4: no
classification win.
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

from minirl.algos.reward_model import OBJECTIVES, LinearRewardModel, RewardModelConfig, train_reward_model
from minirl.checks import MAX_SEEDS, SEED_LIMIT, check_int, check_number, check_probability
from minirl.data import TrajectoryBatch
from llmtrack.pipelines.base import pretrain_base
from llmtrack.pipelines.recipe import SFTRunConfig, cpu_threads, make_pipeline_task
from llmtrack.reward_model import (FrozenLMFeatures, LMRewardModel, frozen_linear_reward_model, gold_accuracy,
                                   gold_correlation, pair_accuracy)
from llmtrack.rollout import generate
from llmtrack.tasks.base import check_count

__all__ = ["RewardNoiseConfig", "run_reward_noise", "summarize_reward_noise", "reward_noise_table", "HEADS",
           "NOISES", "METRICS", "AnnotationConfig", "run_annotation_sweep", "annotation_table",
           "best_of_n_gold", "summarize_annotation", "LABEL_MODELS"]

NOISES = (0.0, 0.1, 0.2, 0.3, 0.4)
HEADS = ("transformer", "linear")
METRICS = ("accuracy", "correlation", "correlation_expert")
_TRAIN_SEED, _EVAL_SEED = 10_000, 20_000  # keep the preference data apart from the base model's corpus (seed)


def _check_seeds(seeds: Any, field: str = "seeds") -> tuple[int, ...]:
    """A non-empty tuple of at most MAX_SEEDS seeds, each leaving room for the offsets above (seed + _EVAL_SEED + 2)."""
    if not isinstance(seeds, (tuple, list)) or not seeds:
        raise ValueError(f"{field}: must be a non-empty tuple of integers >= 0, got {seeds!r}")
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{field}: at most {MAX_SEEDS} seeds (each is a full run), got {len(seeds)}")
    return tuple(check_int(s, field, 0, SEED_LIMIT - 1 - _EVAL_SEED - 2) for s in seeds)


def _check_rm_config(config: Any, field: str) -> None:
    if not isinstance(config, RewardModelConfig):
        raise ValueError(f"{field}: must be a RewardModelConfig, got {type(config).__name__}")


@dataclass(frozen=True)
class RewardNoiseConfig:
    """Settings of the label-noise sweep (module docstring)."""

    noises: tuple[float, ...] = NOISES
    """Label-flip probabilities."""
    objectives: tuple[str, ...] = ("bt", "classification")
    """Reward-model objectives (``minirl.algos.reward_model.OBJECTIVES``)."""
    heads: tuple[str, ...] = HEADS
    """"transformer" (fine-tuned backbone + scalar head) and/or "linear" (on frozen features)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Each seed: its own base model, training pairs, held-out data, head init and minibatches."""
    n_pairs: int = 4000
    """Training preference pairs (noisy labels)."""
    n_eval_pairs: int = 2000
    """Held-out pairs, ordered by the noiseless gold reward."""
    n_eval_samples: int = 2000
    """Held-out samples per policy for the correlations."""
    transformer: RewardModelConfig = RewardModelConfig(n_updates=600, lr=1e-3, batch_size=64)
    """Training of the transformer head (the objective and seed are set per run); ~10 epochs of 4000 pairs."""
    linear: RewardModelConfig = RewardModelConfig(n_updates=500, lr=5e-2)
    """Training of the linear head: full-batch (its features are computed once)."""
    size: str = "nano"
    """Model size preset of the base model."""
    family: str = "gpt2"
    """Model family: "gpt2" or "llama"."""
    fast: bool = False
    """Tests and notebooks: 400 pairs, 500 held-out, 60 transformer updates, a base model pre-trained on
    500 sequences for 60 updates. Numbers from a fast run show the plumbing, not the finding."""
    device: str = "cpu"
    """"cpu" (reproducible), "cuda" or "auto"."""
    cache_dir: str | None = None
    """Cache root for base models."""
    progress: bool = False
    """Progress bar over (seed, noise, objective, head)."""

    def __post_init__(self) -> None:
        if not isinstance(self.noises, (tuple, list)) or not self.noises:
            raise ValueError(f"noises: must be a non-empty tuple of probabilities in [0, 1], got {self.noises!r}")
        for p in self.noises:
            check_probability(p, "noises")
        if not isinstance(self.objectives, (tuple, list)) or not self.objectives \
                or any(not isinstance(o, str) or o not in OBJECTIVES for o in self.objectives):
            raise ValueError(f"objectives: must be a non-empty subset of {sorted(OBJECTIVES)}, got {self.objectives!r}")
        if not isinstance(self.heads, (tuple, list)) or not self.heads or any(h not in HEADS for h in self.heads):
            raise ValueError(f"heads: must be a non-empty subset of {HEADS}, got {self.heads!r}")
        _check_seeds(self.seeds)
        for name in ("n_pairs", "n_eval_pairs", "n_eval_samples"):
            check_count(getattr(self, name), name, 2)
        _check_rm_config(self.transformer, "transformer")
        _check_rm_config(self.linear, "linear")
        self.run_config(self.seeds[0])  # validates size, family, device before any work

    def run_config(self, seed: int) -> SFTRunConfig:
        """The ``llmtrack sft`` settings whose base model this sweep reuses (same cache entry)."""
        small = dict(pretrain_sequences=500, pretrain_updates=60) if self.fast else {}
        return SFTRunConfig(task="markov", size=self.size, family=self.family, algo="bc", seed=seed,
                            device=self.device, cache_dir=self.cache_dir, **small)

    @property
    def budgets(self) -> tuple[int, int, int, RewardModelConfig]:
        """(n_pairs, n_eval_pairs, n_eval_samples, transformer config) after ``fast``."""
        if self.fast:
            return 400, 500, 500, dataclasses.replace(self.transformer, n_updates=60)
        return self.n_pairs, self.n_eval_pairs, self.n_eval_samples, self.transformer


def run_reward_noise(config: RewardNoiseConfig = RewardNoiseConfig()) -> list[dict[str, Any]]:
    """Run the sweep (module docstring); one row per (seed, noise, objective, head). Deterministic on the CPU.

    Each row: seed, noise, objective, head, flipped (the share of training labels actually
    flipped), accuracy, correlation, correlation_expert (docs/equations.md §5; llmtrack.reward_model's
    ``gold_accuracy`` / ``gold_correlation``), train_s.
    """
    task = make_pipeline_task("markov")
    n_pairs, n_eval_pairs, n_eval_samples, transformer = config.budgets
    rows: list[dict[str, Any]] = []
    jobs = [(s, p, o, h) for s in config.seeds for p in config.noises for o in config.objectives for h in config.heads]
    bar = tqdm(total=len(jobs), desc="reward noise", disable=not config.progress)
    for seed in config.seeds:
        run = config.run_config(seed)
        with cpu_threads(run):  # as run_sft: the same thread count finds the same cached base model
            base = pretrain_base(task, run.size, run.family, seed, run.pretrain_sequences, run.pretrain_bc(),
                                 cache_dir=run.cache_dir, device=run.device)
            held_out = task.preferences(n_eval_pairs, noise=0.0, seed=_EVAL_SEED + seed)
            samples = {"correlation": task.rollout(task.base, n_eval_samples, seed=_EVAL_SEED + seed + 1),
                       "correlation_expert": task.rollout(task.expert, n_eval_samples, seed=_EVAL_SEED + seed + 2)}
            for noise in config.noises:
                # same seed at every noise: the same pairs, nested flips (module docstring)
                train = task.preferences(n_pairs, noise=noise, seed=_TRAIN_SEED + seed)
                for objective in config.objectives:
                    for head in config.heads:
                        start = time.perf_counter()
                        if head == "transformer":
                            model = LMRewardModel.from_policy(base, device=run.device, seed=seed)
                            rm = dataclasses.replace(transformer, objective=objective, seed=seed)
                        else:
                            model = frozen_linear_reward_model(base, device=run.device)
                            rm = dataclasses.replace(config.linear, objective=objective, seed=seed)
                        train_reward_model(model, train, rm)
                        row = {"seed": seed, "noise": float(noise), "objective": objective, "head": head,
                               "flipped": float(train.chosen.info["flipped"].float().mean()),
                               "accuracy": gold_accuracy(model, held_out, task.gold_reward)}
                        for key, batch in samples.items():
                            row[key] = gold_correlation(model, batch, task.gold_reward)
                        row["train_s"] = time.perf_counter() - start
                        rows.append(row)
                        bar.update()
    bar.close()
    return rows


def summarize_reward_noise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds of each metric, one entry per (head, objective, noise), in the rows' order."""
    groups: dict[tuple[str, str, float], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["head"], r["objective"], r["noise"]), []).append(r)
    out = []
    for (head, objective, noise), rs in sorted(groups.items(), key=lambda kv: (HEADS.index(kv[0][0]), kv[0][1],
                                                                             kv[0][2])):
        entry: dict[str, Any] = {"head": head, "objective": objective, "noise": noise, "n_seeds": len(rs)}
        for key in METRICS + ("flipped", "train_s"):
            values = np.array([r[key] for r in rs], dtype=float)
            entry[key] = float(values.mean())
            entry[f"{key}_std"] = float(values.std())
        out.append(entry)
    return out


def reward_noise_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table: per head and noise, BT vs classification, means (+- std) over seeds."""
    summary = summarize_reward_noise(rows)
    objectives = sorted({e["objective"] for e in summary})
    n_seeds = max(e["n_seeds"] for e in summary)
    lines = [f"Reward models vs label noise, markov task, {n_seeds} seed(s); mean +- std over seeds",
             f"{'head':>11} {'noise':>5} {'flipped':>7} | " + " | ".join(
                 f"{o + ' acc':>19} {'corr base':>17} {'corr expert':>17}" for o in objectives)]
    by_key = {(e["head"], e["objective"], e["noise"]): e for e in summary}
    for head in [h for h in HEADS if any(e["head"] == h for e in summary)]:
        for noise in sorted({e["noise"] for e in summary if e["head"] == head}):
            cells, flipped = [], None
            for o in objectives:
                e = by_key.get((head, o, noise))
                if e is None:
                    cells.append(f"{'-':>19} {'-':>17} {'-':>17}")
                    continue
                flipped = e["flipped"]
                cells.append(" ".join(f"{e[k]:>{w - 9}.4f} +- {e[k + '_std']:.4f}"
                                      for k, w in (("accuracy", 19), ("correlation", 17), ("correlation_expert", 17))))
            lines.append(f"{head:>11} {noise:>5.2f} {flipped:>7.3f} | " + " | ".join(cells))
    total = sum(r["train_s"] for r in rows)
    lines.append(f"training + evaluation time {total:.1f} s over {len(rows)} runs")
    return "\n".join(lines)


# -- second sweep: few, ambiguous annotations on the frozen linear head --------------------------------------

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
        _check_seeds(self.seeds)
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
            check_count(getattr(self, name), name, 2)
        _check_rm_config(self.linear, "linear")
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


def best_of_n_gold(scores: Tensor, gold: Tensor, n: int) -> float:
    """Mean over prompts (rows) of the gold reward of the candidate with the highest score among the first n."""
    pick = scores[:, :n].argmax(1, keepdim=True)
    return float(gold[:, :n].gather(1, pick).mean())


def run_annotation_sweep(config: AnnotationConfig = AnnotationConfig()) -> list[dict[str, Any]]:
    """Run the annotation sweep (module docstring, "Few, ambiguous annotations"); one row per
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
            base = pretrain_base(task, run.size, run.family, seed, run.pretrain_sequences, run.pretrain_bc(),
                                 cache_dir=run.cache_dir, device=run.device)
            features = FrozenLMFeatures(base, device=run.device)
            held_out = task.preferences(n_eval_pairs, noise=0.0, seed=_EVAL_SEED + seed)
            samples = task.rollout(task.base, n_eval_samples, seed=_EVAL_SEED + seed + 1)
            g = torch.Generator().manual_seed(_EVAL_SEED + seed + 3)
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
                    train = task.preferences(n_pairs, seed=_TRAIN_SEED + seed,
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
                               "correlation": float(torch.corrcoef(torch.stack([score["samples"],
                                                                                gold["samples"]]))[0, 1])}
                        bon_scores = score["bon"].view(bon_prompts, n_max)
                        for n in config.bon_sizes:
                            row[f"bon{n}"] = best_of_n_gold(bon_scores, gold["bon"], n)
                            row[f"bon{n}_oracle"] = best_of_n_gold(gold["bon"], gold["bon"], n)
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
