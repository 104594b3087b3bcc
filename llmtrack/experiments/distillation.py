"""The distillation lab: sft, kd, dagger, gkd (a beta x lambda grid) and rkl over seeds (docs/equations.md §10).

Every run is one :func:`llmtrack.pipelines.distillation.run_distill` (the ``llmtrack distill`` command) at
equal labelled sequences N; seed k uses base model k, data k, training k, and the same evaluation prompts.
The summary per (task, N, method, beta, lambda) is the mean +- standard error over seeds of the exact-teacher
scores (forward and reverse KL of whole responses, gold reward; on sort mistakes_after_first and slip rate),
and the fraction of seeds on which the method beats SFT of the same seed (lower forward KL on markov; higher
expert accuracy on sort). DAgger variants (``dagger_variants``) add runs with an SFT cold start and coached
labels (``--cold-start``, ``--labels coach`` of ``llmtrack distill``); each is summarised on its own, and
``methods`` restricts a lab to some methods. Results and commands: docs/results/distillation.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from minirl.checks import check_seed_list
from minirl.estimators import mean_se
from llmtrack.pipelines.distillation import METHODS, DistillRunConfig, run_distill

__all__ = ["LabConfig", "lab_runs", "run_distillation_lab", "summarize_lab", "lab_table"]

GRID = tuple((b, l) for b in (0.0, 0.5, 1.0) for l in (0.0, 0.5, 1.0))
DAGGER_VARIANTS = {"expert": (False, "expert"), "cold": (True, "expert"), "coach": (False, "coach"),
                   "cold+coach": (True, "coach")}
"""A DAgger variant's name -> (cold_start, labels) of its runs."""


@dataclass(frozen=True)
class LabConfig:
    """Which runs: the task, the budgets N, the seeds, whether the full GKD grid runs at every N, the methods,
    and the DAgger variants."""

    task: str = "markov"
    labelled: tuple[int, ...] = (200, 1000)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    full_grid_at: tuple[int, ...] = (1000,)
    methods: tuple[str, ...] = METHODS
    """The methods that run (those the task refuses are skipped)."""
    dagger_variants: tuple[str, ...] = ("expert",)
    """The DAgger runs, each a name of ``DAGGER_VARIANTS``."""
    rkl_gammas: tuple[float, ...] = (0.0, 1.0)
    """The rkl runs, one per discount of its reward-to-go (``DistillRunConfig.rl_gamma``)."""
    size: str = "nano"
    """The students' (and their base models') size preset."""
    progress: bool = False

    def __post_init__(self) -> None:
        check_seed_list(self.seeds, "seeds", distinct=True)
        for name, values, valid in (("methods", self.methods, METHODS), ("dagger_variants", self.dagger_variants,
                                                                          DAGGER_VARIANTS)):
            if not isinstance(values, tuple) or not values or any(v not in valid for v in values):
                raise ValueError(f"{name}: must be a non-empty tuple of {list(valid)}, got {values!r}")
        for n in self.labelled:
            DistillRunConfig(task=self.task, labelled=n, size=self.size)  # validates task, N and size
        if not isinstance(self.rkl_gammas, tuple) or not self.rkl_gammas:
            raise ValueError(f"rkl_gammas: must be a non-empty tuple of discounts in [0, 1], got {self.rkl_gammas!r}")
        for gamma in self.rkl_gammas:
            DistillRunConfig(rl_gamma=gamma)
        if "dagger" in self.methods:
            for variant in self.dagger_variants:  # coach needs the task's regret
                cold_start, labels = DAGGER_VARIANTS[variant]
                DistillRunConfig(task=self.task, method="dagger", cold_start=cold_start, labels=labels)


def lab_runs(config: LabConfig) -> list[DistillRunConfig]:
    """Every run of the lab, in order (sort skips what its deterministic teacher refuses: beta = 1, rkl)."""
    runs = []
    for n in config.labelled:
        grid = GRID if n in config.full_grid_at else ((0.5, 1.0),)
        methods: list[tuple[str, float, float]] = [("sft", 0.5, 1.0), ("kd", 0.5, 1.0), ("dagger", 0.5, 1.0)]
        methods += [("gkd", b, l) for b, l in grid]
        methods.append(("rkl", 0.5, 1.0))
        for method, beta, lmbda in methods:
            if method not in config.methods or config.task == "sort" and (
                    method == "rkl" or (method == "gkd" and beta == 1.0)):
                continue
            variants = [DAGGER_VARIANTS[v] + (0.0,) for v in config.dagger_variants] if method == "dagger" else (
                [(False, "expert", g) for g in config.rkl_gammas] if method == "rkl" else [(False, "expert", 0.0)])
            for cold_start, labels, rl_gamma in variants:
                for seed in config.seeds:
                    runs.append(DistillRunConfig(task=config.task, method=method, beta=beta, lmbda=lmbda, labelled=n,
                                                 seed=seed, cold_start=cold_start, labels=labels, rl_gamma=rl_gamma,
                                                 size=config.size))
    return runs


def run_distillation_lab(config: LabConfig) -> list[dict[str, Any]]:
    """Run every run of the lab; one row (``run_distill``'s dict) each."""
    return [run_distill(run) for run in tqdm(lab_runs(config), desc="distillation lab", disable=not config.progress)]


def summarize_lab(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean +- se over seeds per (task, size, N, method, beta, lambda, variant), and the fraction of seeds
    beating SFT; a DAgger variant is its rows' ``labels`` and ``cold_start`` (absent in older rows: plain DAgger)."""
    import torch

    sft = {(r["task"], r.get("size", "nano"), r["labelled"], r["seed"]): r for r in rows if r["method"] == "sft"}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        variant = (r.get("labels") or "expert", bool(r.get("cold_start")), r.get("rl_gamma"))
        groups.setdefault((r["task"], r.get("size", "nano"), r["labelled"], r["method"], r["beta"], r["lmbda"], variant),
                          []).append(r)
    out = []
    for (task, size, n, method, beta, lmbda, (labels, cold_start, rl_gamma)), rs in groups.items():
        entry: dict[str, Any] = {"task": task, "size": size, "labelled": n, "method": method, "beta": beta, "lmbda": lmbda,
                                 "seeds": len(rs), "teacher_queries": sum(r["teacher_queries"] for r in rs) / len(rs)}
        if method == "dagger":
            entry.update(labels=labels, cold_start=cold_start)
        if method == "rkl":
            entry.update(rl_gamma=rl_gamma)
        for key in ("forward_kl", "reverse_kl", "gold_reward", "expert_accuracy", "mistakes_after_first", "slip_rate",
                    "relabelled"):
            values = [r[key] for r in rs if r.get(key) is not None]
            if values:
                entry[key], entry[f"{key}_se"] = mean_se(torch.tensor(values, dtype=torch.float64))
        key, better = ("forward_kl", -1) if task == "markov" else ("expert_accuracy", 1)
        wins = [better * (r[key] - sft[(task, size, n, r["seed"])][key]) > 0 for r in rs
                if (task, size, n, r["seed"]) in sft and r.get(key) is not None]
        entry["beats_sft"] = sum(wins) / len(wins) if wins else math.nan
        out.append(entry)
    return out


def lab_table(summary: list[dict[str, Any]]) -> str:
    """A markdown table of the summary."""
    def fmt(e: dict[str, Any], key: str) -> str:
        return f"{e[key]:.3f} ± {e[key + '_se']:.3f}" if key in e else "–"

    lines = ["| N | method | beta | lambda | forward KL | reverse KL | gold reward | expert acc. | mistakes after first "
             "| slip rate | beats SFT | teacher queries |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in summary:
        b = "" if e["beta"] is None else f"{e['beta']:g}"
        lam = "" if e["lmbda"] is None else f"{e['lmbda']:g}"
        method = e["method"] + (" + cold start" if e.get("cold_start") else "") + (
            " + coach" if e.get("labels") == "coach" else "") + (
            f", γ = {e['rl_gamma']:g}" if e.get("rl_gamma") is not None else "")
        lines.append(f"| {e['labelled']} | {method} | {b} | {lam} | {fmt(e, 'forward_kl')} | {fmt(e, 'reverse_kl')} | "
                     f"{fmt(e, 'gold_reward')} | {fmt(e, 'expert_accuracy')} | {fmt(e, 'mistakes_after_first')} | "
                     f"{fmt(e, 'slip_rate')} | {e['beats_sft']:.0%} | {e['teacher_queries']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m llmtrack.experiments.distillation --task markov`` : the lab's JSON rows on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="markov")
    parser.add_argument("--labelled", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--full-grid-at", type=int, nargs="*", default=[1000])
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--dagger-variants", nargs="+", default=["expert"], help=" | ".join(DAGGER_VARIANTS))
    parser.add_argument("--size", default="nano", help="the students' size preset (default nano)")
    parser.add_argument("--rkl-gammas", type=float, nargs="+", default=[0.0, 1.0],
                        help="rkl's reward-to-go discounts, one run each")
    args = parser.parse_args(argv)
    config = LabConfig(task=args.task, labelled=tuple(args.labelled), seeds=tuple(range(args.seeds)),
                       full_grid_at=tuple(args.full_grid_at), methods=tuple(args.methods),
                       dagger_variants=tuple(args.dagger_variants), rkl_gammas=tuple(args.rkl_gammas), size=args.size,
                       progress=sys.stderr.isatty())
    print(json.dumps(run_distillation_lab(config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
