"""Reward models under label noise: Bradley-Terry vs classification, fine-tuned transformer vs linear head.

Survey §4.1, take-away (2), after Sun et al. 2024b: the classification objective (y+ is class 1,
y- class 0, each scored on its own) is order-consistent like Bradley-Terry and claimed to be *more robust
to annotation noise*. docs/equations.md §5:

    BT               L = -E[log sigma(r(x, y+) - r(x, y-))]
    classification   L = -E[log sigma(r(x, y+)) + log sigma(-r(x, y-))] / 2

The sweep, on the markov task with the pipelines' settings (``TASK_SETTINGS["markov"]``): for each
seed, a nano base model is pre-trained as ``llmtrack sft`` does (cached); n preference pairs are
drawn from the base generator and labelled by the noiseless gold ordering, then each label is
flipped with probability ``noise`` (:func:`minirl.preferences.label_pairs`). Design: the pairs are the
same at every noise level and the flips are nested (a label flipped at 0.1 is flipped at 0.2), so the
rows of one seed differ only in the flips. For each noise x objective x head:

    transformer  :class:`~llmtrack.reward_model.LMRewardModel` from a copy of the base model,
                 scalar head on the last real token, minibatch Adam (``transformer``)
    linear       :func:`~llmtrack.reward_model.frozen_linear_reward_model`: w . [sum_t h_t, 1] on
                 the frozen base model's hidden states, full-batch Adam (``linear``)

measured on held-out data (fresh seeds): ``accuracy`` against the *noiseless* gold ordering of
pairs from the base generator; ``correlation`` (Pearson) of the score with the gold reward on
base-generator samples, and ``correlation_expert`` on samples of the exact expert pi* (the kind
of responses a policy optimised against the reward model produces). The measured tables, with their
command: docs/results/alignment.md. The sweep where classification does win (few, ambiguous labels on
the linear head) is :mod:`llmtrack.experiments.annotation`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from minirl.algos.reward_model import OBJECTIVES, RewardModelConfig, train_reward_model
from minirl.checks import check_int, check_probability, check_seed_list
from llmtrack.pipelines.recipe import SFTRunConfig, cpu_threads, make_pipeline_task
from llmtrack.reward_model import LMRewardModel, frozen_linear_reward_model, gold_accuracy, gold_correlation

__all__ = ["RewardNoiseConfig", "run_reward_noise", "summarize_reward_noise", "reward_noise_table", "HEADS",
           "NOISES", "METRICS", "TRAIN_SEED", "EVAL_SEED", "check_sweep_seeds", "check_rm_config"]

NOISES = (0.0, 0.1, 0.2, 0.3, 0.4)
HEADS = ("transformer", "linear")
METRICS = ("accuracy", "correlation", "correlation_expert")
TRAIN_SEED, EVAL_SEED = 10_000, 20_000
"""Offsets that keep the preference data (training, held-out) apart from the base model's corpus (seed)."""


def check_sweep_seeds(seeds: Any, field: str = "seeds") -> tuple[int, ...]:
    """A sweep's seeds, each leaving room for the offsets above (seed + EVAL_SEED + 2)."""
    return check_seed_list(seeds, field, offset=EVAL_SEED + 2)


def check_rm_config(config: Any, field: str) -> None:
    """``config`` must be a RewardModelConfig; else a ValueError naming ``field``."""
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
        check_sweep_seeds(self.seeds)
        for name in ("n_pairs", "n_eval_pairs", "n_eval_samples"):
            check_int(getattr(self, name), name, 2)
        check_rm_config(self.transformer, "transformer")
        check_rm_config(self.linear, "linear")
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
            base = run.base_model().build(task, run.cache_dir)
            held_out = task.preferences(n_eval_pairs, noise=0.0, seed=EVAL_SEED + seed)
            samples = {"correlation": task.rollout(task.base, n_eval_samples, seed=EVAL_SEED + seed + 1),
                       "correlation_expert": task.rollout(task.expert, n_eval_samples, seed=EVAL_SEED + seed + 2)}
            for noise in config.noises:
                # same seed at every noise: the same pairs, nested flips (module docstring)
                train = task.preferences(n_pairs, noise=noise, seed=TRAIN_SEED + seed)
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
