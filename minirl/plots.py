"""Figures. Plotting lives apart from the algorithms: these functions read results only.

Each function is named after what it shows and returns a matplotlib Figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # keep `import minirl.plots` free of experiment imports
    from matplotlib.figure import Figure

    from minirl.experiments.compounding_error import CompoundingErrorResult

__all__ = ["compounding_error_figure"]

_COLORS = {"bc": "tab:red", "dagger": "tab:blue"}
_LABELS = {"bc": "behaviour cloning", "dagger": "DAgger"}


def compounding_error_figure(result: "CompoundingErrorResult") -> "Figure":
    """Mistakes l(pi) against horizon T on log-log axes, BC vs DAgger, with T and T^2 guides.

    Markers: Monte-Carlo means over seeds with +-1 std error bars; lines: exact l(pi);
    shaded: the regime eps T > 1 that the exponent fit leaves out.
    """
    import matplotlib.pyplot as plt

    T = np.asarray(result.horizons, dtype=float)
    eps = result.config.epsilon
    s = result.summary()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    for m in ("bc", "dagger"):
        mean, std = result.mistakes[m].mean(0), result.mistakes[m].std(0)
        ax.errorbar(T, mean, yerr=std, fmt="o", color=_COLORS[m], capsize=3,
                    label=f"{_LABELS[m]}: slope {s[f'{m}_exponent']:.2f} ± {s[f'{m}_exponent_std']:.2f}")
        ax.plot(T, result.exact[m].mean(0), "-", color=_COLORS[m], alpha=0.6)
    ax.plot(T, eps * T, "k:", label=r"$\epsilon T$ (slope 1)")
    ax.plot(T, eps * T**2 / 2, "k--", label=r"$\epsilon T^2/2$ (slope 2)")
    if T.max() * eps > 1:
        ax.axvspan(1 / eps, T.max() * 1.1, color="grey", alpha=0.15, label=r"$\epsilon T > 1$ (not fitted)")
    ax.set(xscale="log", yscale="log", xlabel="horizon T",
           ylabel=r"mistakes $\ell(\pi)$ along own rollouts (seed eq. 1)",
           title=f"Compounding error, per-state error ε = {eps}")
    ax.legend(fontsize=8)
    ax = axes[1]
    for m in ("bc", "dagger"):
        per_step = result.mistakes[m] / T
        ax.errorbar(T, per_step.mean(0), yerr=per_step.std(0), fmt="o-", color=_COLORS[m], capsize=3, label=_LABELS[m])
    ax.axhline(eps, color="k", ls=":", label="ε")
    ax.set(xscale="log", xlabel="horizon T", ylabel=r"mistakes per step $\ell(\pi)/T$",
           title="BC's error rate grows with T; DAgger's stays at ε")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
