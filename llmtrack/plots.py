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

__all__ = ["exposure_bias_figure"]

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
