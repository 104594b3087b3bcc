"""llmtrack's figures. Plotting lives apart from the pipelines: these functions read results only.

Each function is named after what it shows and returns a matplotlib Figure (matplotlib is
imported inside, so ``import llmtrack.plots`` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from llmtrack.experiments.exposure_bias import ExposureBiasResult

__all__ = ["exposure_bias_figure", "reward_noise_figure", "annotation_figure"]

_COLORS = {"base": "tab:gray", "bc": "tab:red", "dagger": "tab:blue"}
_LABELS = {"base": "base model", "bc": "SFT (BC)", "dagger": "on-policy distillation (DAgger)"}


def exposure_bias_figure(result: "ExposureBiasResult") -> "Figure":
    """Sort: mistakes per sequence vs list length along each model's own generations (seed eq. 1),
    and the split into slip rate and mistakes after the first; markov: forward and reverse KL.

    Markers are means over seeds, bars +-1 std over seeds (one seed: no bars).
    """
    import matplotlib.pyplot as plt

    panels = ("sort" in result.metrics) * 2 + ("markov" in result.metrics)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.2), squeeze=False)
    axes = list(axes[0])
    models = ("base", "bc", "dagger")
    if "sort" in result.metrics:
        ax = axes.pop(0)
        for m in models:
            lengths, table = result.mistakes_by_length(m)
            ax.errorbar(lengths, np.nanmean(table, 0), yerr=np.nanstd(table, 0), fmt="o-", capsize=3,
                        color=_COLORS[m], label=_LABELS[m])
        ax.set(yscale="log", xlabel="list length n (horizon n + 1)",
               ylabel=r"mistakes per sequence $\ell(\pi)$ (seed eq. 1)",
               title=f"sort: own generations, N = {result.labelled_sequences.get('sort')} labelled sequences")
        ax.legend(fontsize=8)
        ax = axes.pop(0)
        x = np.arange(2)
        for i, m in enumerate(models):
            rows = result.metrics["sort"][m]
            vals = np.array([[r["slip_rate"], r["mistakes_after_first"]] for r in rows])
            ax.bar(x + (i - 1) * 0.27, vals.mean(0), 0.27, yerr=vals.std(0) if len(rows) > 1 else None,
                   color=_COLORS[m], label=_LABELS[m], capsize=3)
        ax.set_xticks(x, ["P(a mistake)", "mistakes after the first"])
        ax.set(yscale="log", title="how often a generation slips / what a slip costs")
    if "markov" in result.metrics:
        ax = axes.pop(0)
        x = np.arange(2)
        for i, m in enumerate(models):
            rows = result.metrics["markov"][m]
            vals = np.array([[r["forward_kl"], r["reverse_kl"]] for r in rows], dtype=float)
            ax.bar(x + (i - 1) * 0.27, vals.mean(0), 0.27, yerr=vals.std(0) if len(rows) > 1 else None,
                   color=_COLORS[m], label=_LABELS[m], capsize=3)
        ax.set_xticks(x, [r"forward KL$(d^\beta \| d^\pi)$", r"reverse KL$(d^\pi \| d^\beta)$"])
        ax.set(ylabel="nats per response", title="markov: KL to the exact expert (Monte-Carlo)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reward_noise_figure(rows: list[dict]) -> "Figure":
    """Reward models vs label noise (llmtrack.experiments.reward_noise; docs/equations.md §5): held-out accuracy
    against the noiseless gold ordering, and the score's correlation with the gold reward on base and
    expert samples, vs the label-flip probability; one line per objective x head.

    Markers are means over seeds, bars +-1 std over seeds (one seed: no bars).
    """
    import matplotlib.pyplot as plt

    from llmtrack.experiments.reward_noise import summarize_reward_noise

    summary = summarize_reward_noise(rows)
    panels = (("accuracy", "held-out accuracy (noiseless gold order)"),
              ("correlation", "corr(r, gold) on base samples"),
              ("correlation_expert", "corr(r, gold) on expert samples"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.0), squeeze=False)
    lines = sorted({(e["head"], e["objective"]) for e in summary})
    colors = {"bt": "tab:blue", "classification": "tab:orange"}
    styles = {"transformer": ("o", "-"), "linear": ("s", "--")}
    for ax, (key, title) in zip(axes[0], panels):
        for head, objective in lines:
            pts = [e for e in summary if e["head"] == head and e["objective"] == objective]
            marker, linestyle = styles.get(head, ("^", ":"))
            ax.errorbar([e["noise"] for e in pts], [e[key] for e in pts],
                        yerr=[e[f"{key}_std"] for e in pts] if pts[0]["n_seeds"] > 1 else None,
                        marker=marker, linestyle=linestyle, color=colors.get(objective), capsize=3,
                        label=f"{objective}, {head}")
        ax.set(xlabel="label-flip probability", title=title)
    axes[0][0].axhline(0.5, color="gray", lw=0.8)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def annotation_figure(rows: list[dict], metrics: tuple[str, ...] = ("accuracy", "correlation", "bon64")) -> "Figure":
    """Where classification beats Bradley-Terry (llmtrack.experiments.reward_noise, the annotation sweep):
    for each (pairs, label model) cell, classification - BT and BT with a ridge - BT, paired by seed, with
    +-2 standard-error bars; one panel per metric. A bar clear of zero by its error bar is a win.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from llmtrack.experiments.reward_noise import summarize_annotation

    summary = summarize_annotation(rows)
    cells = list(dict.fromkeys((e["n_pairs"], e["label_model"], e["level"]) for e in summary))
    others = list(dict.fromkeys(e["objective"] for e in summary if "accuracy_diff" in e))
    by_key = {(e["n_pairs"], e["label_model"], e["level"], e["objective"]): e for e in summary}
    metrics = tuple(m for m in metrics if any(m in e for e in summary))
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6.0, 0.7 * len(cells)), 2.6 * len(metrics)),
                             squeeze=False, sharex=True)
    width = 0.8 / max(len(others), 1)
    colors = {"classification": "tab:orange", "bt+ridge": "tab:green"}
    x = np.arange(len(cells))
    for ax, metric in zip(axes[:, 0], metrics):
        for k, objective in enumerate(others):
            entries = [by_key.get((*cell, objective)) for cell in cells]
            diff = [e[f"{metric}_diff"] if e else np.nan for e in entries]
            se = [2 * e[f"{metric}_diff_se"] if e else np.nan for e in entries]
            ax.bar(x + (k - (len(others) - 1) / 2) * width, diff, width, yerr=se, capsize=2,
                   color=colors.get(objective), label=f"{objective} - bt")
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_ylabel(f"{metric} difference")
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_title("Frozen linear head: objective - Bradley-Terry, paired by seed (+-2 se)")
    names = {"flip": "flip", "temperature": "T"}
    axes[-1, 0].set_xticks(x, [f"{n}\n{names.get(m, m)} {lvl:g}" for n, m, lvl in cells], fontsize=7)
    axes[-1, 0].set_xlabel("training pairs / label model (flip probability, or BT temperature T)")
    fig.tight_layout()
    return fig
