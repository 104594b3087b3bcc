"""Figures of the alignment experiments. They read result rows only (matplotlib imported inside).

    optimal_frontier_figure      gold reward vs KL(pi || pi_ref): the exact optimum's curve (docs/equations.md §6)
                                 with any methods' points under it
    best_of_n_kl_figure          KL(pi_BoN || pi_ref) vs N against log N - (N - 1)/N (docs/equations.md §6)
    overoptimisation_figure      proxy and gold reward vs d = sqrt(KL) with Gao et al.'s fitted curves
                                 (docs/equations.md §8)
    overoptimisation_experiment_figure, overoptimisation_sweep_figure
                                 the over-optimisation experiment: one seed's curves; every seed's gold curves
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from llmtrack.alignment.overoptimisation import GaoFit

__all__ = ["optimal_frontier_figure", "best_of_n_kl_figure", "overoptimisation_figure"]


def _column(rows: Sequence[Mapping[str, float]], key: str, field: str = "rows") -> np.ndarray:
    if len(rows) == 0:
        raise ValueError(f"{field}: need at least one row")
    if any(key not in r for r in rows):
        raise ValueError(f"{field}: every row needs the key {key!r}")
    return np.array([float(r[key]) for r in rows])


def optimal_frontier_figure(frontier: Sequence[Mapping[str, float]],
                            points: Mapping[str, Sequence[Mapping[str, float]]] | None = None) -> "Figure":
    """Gold reward vs KL(pi || pi_ref) along the exact optimum pi*_beta (rows of
    :func:`~llmtrack.alignment.answer_key.optimal_frontier`), beta annotated; ``points`` maps a method's
    name to rows with "kl" (or "kl_to_ref") and "gold_reward" (or "gold"), drawn as markers."""
    import matplotlib.pyplot as plt

    kl, gold, beta = (_column(frontier, k, "frontier") for k in ("kl_to_ref", "gold_reward", "beta"))
    order = np.argsort(kl)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    ax.plot(kl[order], gold[order], "-", color="black", label=r"exact optimum $\pi^*_\beta$")
    for x, y, b in zip(kl, gold, beta):
        ax.annotate(f"β={b:g}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    for name, rows in (points or {}).items():
        kk = "kl" if all("kl" in r for r in rows) else "kl_to_ref"
        gk = "gold_reward" if all("gold_reward" in r for r in rows) else "gold"
        ax.plot(_column(rows, kk, name), _column(rows, gk, name), "o--", ms=4, label=name)
    ax.set(xlabel=r"KL($\pi$ || $\pi_{ref}$) (nats)", ylabel="expected gold reward",
           title="reward-KL frontier (docs/equations.md §6)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def best_of_n_kl_figure(rows: Sequence[Mapping[str, float]]) -> "Figure":
    """KL(pi_BoN || pi_ref) against N (log axis) with the bound log N - (N-1)/N; rows of
    :func:`~llmtrack.alignment.best_of_n.exact_best_of_n` (key "kl") and optional "kl_mc"/"kl_mc_se"."""
    import matplotlib.pyplot as plt

    n = _column(rows, "n")
    grid = np.geomspace(1, n.max(), 200)
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    ax.plot(grid, np.log(grid) - (grid - 1) / grid, "--", color="gray", label=r"bound $\log N - (N-1)/N$")
    ax.plot(n, _column(rows, "kl"), "o-", color="tab:blue", label="exact")
    if all("kl_mc" in r for r in rows):
        se = _column(rows, "kl_mc_se") if all("kl_mc_se" in r for r in rows) else None
        ax.errorbar(n, _column(rows, "kl_mc"), yerr=se, fmt="x", color="tab:orange", capsize=3, label="Monte Carlo")
    ax.set(xscale="log", xlabel="N", ylabel=r"KL($\pi_{BoN}$ || $\pi_{ref}$) (nats)",
           title="Best-of-N: KL to the reference")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def overoptimisation_figure(rows: Sequence[Mapping[str, float]], gold_fit: "GaoFit | None" = None,
                            proxy_fit: "GaoFit | None" = None, gold_key: str = "gold",
                            proxy_key: str = "proxy") -> "Figure":
    """Proxy and gold reward vs d = sqrt(KL) (Gao et al. 2023; docs/equations.md §8): rows with "kl" and the
    two reward keys (:func:`~llmtrack.alignment.overoptimisation.best_of_n_curve` rows, or
    :func:`~llmtrack.alignment.best_of_n.exact_best_of_n` rows with gold_key="gold_reward",
    proxy_key="proxy_reward"); fitted curves drawn where given. Two y-axes: the proxy's scale is its own."""
    import matplotlib.pyplot as plt

    d = np.sqrt(_column(rows, "kl"))
    gold, proxy = _column(rows, gold_key), _column(rows, proxy_key)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    ax.plot(d, gold, "o", color="tab:green", label="gold")
    ax2 = ax.twinx()
    ax2.plot(d, proxy, "s", color="tab:purple", label="proxy")
    grid = np.linspace(0, d.max(), 200)
    for fit, axis, color, offset in ((gold_fit, ax, "tab:green", gold[np.argmin(d)]),
                                     (proxy_fit, ax2, "tab:purple", proxy[np.argmin(d)])):
        if fit is not None:
            axis.plot(grid, offset + fit.predict(grid ** 2), "-", color=color,
                      label=rf"fit ({fit.form}): $\alpha$={fit.alpha:.2f}, $\beta$={fit.beta:.2f}, $R^2$={fit.r2:.2f}")
    ax.set(xlabel=r"$d = \sqrt{KL(\pi || \pi_{ref})}$", ylabel="gold reward", title="reward over-optimisation")
    ax2.set_ylabel("proxy reward")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
    ax.legend(lines, labels, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def overoptimisation_experiment_figure(result: Mapping) -> "Figure":
    """One seed of the over-optimisation experiment
    (:func:`~llmtrack.experiments.overoptimisation.run_overoptimisation`): gold gain (top), the optimised
    score's gain (middle) and, where the rows have them, the uses of the annotator's spurious word per response
    (bottom) against d = sqrt(KL(pi || pi_0)); Best-of-N (left) and PPO (right), optimising the single proxy
    and the ensemble's mean - k std, and Best-of-N against the gold reward itself (grey, "oracle") where
    present. Gao et al.'s fitted gold curves dashed (docs/equations.md §8).
    Gains are relative to pi_0 (N = 1, PPO step 0)."""
    import matplotlib.pyplot as plt

    curves, fits = result["curves"], result["fits"]
    config = result.get("config", {})
    k, word = config.get("ensemble_k"), config.get("spurious_word")
    labels = {"proxy": "proxy", "ensemble": "ensemble" + (f" (mean − {k:g} std)" if k is not None else ""),
              "oracle": "gold reward (oracle)"}
    colours = {"proxy": "tab:red", "ensemble": "tab:blue", "oracle": "tab:gray"}
    titles = {"bon": "Best-of-N", "ppo": "PPO (checkpoints along training)"}
    uses = all("mentions" in r for m in ("bon", "ppo") for rows in curves[m].values() for r in rows)
    fig, axes = plt.subplots(3 if uses else 2, 2, figsize=(10, 9 if uses else 6.5), sharex="col")
    for col, method in enumerate(("bon", "ppo")):
        top, middle = axes[0, col], axes[1, col]
        for scorer in ("oracle", "proxy", "ensemble"):
            rows = curves[method].get(scorer)
            if not rows:
                continue
            d = _column(rows, "d", f"{method}/{scorer}")
            gold = _column(rows, "gold_gain", f"{method}/{scorer}")
            se_key = "gold_gain_se" if all("gold_gain_se" in r for r in rows) else "gold_se"
            se = _column(rows, se_key, f"{method}/{scorer}")
            c = colours[scorer]
            top.errorbar(d, gold, yerr=se, fmt="o" if scorer != "oracle" else ".-", ms=3.5, color=c, capsize=2,
                         lw=1 if scorer == "oracle" else None, label=f"optimising the {labels[scorer]}")
            fit = fits.get(method, {}).get(scorer)
            if fit is not None:
                grid = np.linspace(0, d.max() * 1.02, 200)
                top.plot(grid, fit.predict(grid ** 2), "--", color=c, lw=1.2,
                         label=rf"Gao fit ({fit.form}): $\alpha$={fit.alpha:.2f}, $\beta$={fit.beta:.2f}, "
                               rf"$R^2$={fit.r2:.2f}")
            if scorer != "oracle":
                middle.plot(d, _column(rows, "proxy_gain", f"{method}/{scorer}"), "s-", ms=3.5, color=c, lw=1,
                            label=f"its score ({labels[scorer]})")
            if uses:
                axes[2, col].plot(d, _column(rows, "mentions", f"{method}/{scorer}"), "^-", ms=3.5, color=c, lw=1,
                                  label=labels[scorer])
        top.axhline(0, color="gray", lw=0.6)
        top.set(title=titles[method], ylabel="gold reward − gold of π₀")
        middle.set(ylabel="optimised score − score of π₀")
        top.legend(fontsize=7)
        middle.legend(fontsize=7)
        if uses:
            axes[2, col].set(ylabel=f"uses of {word!r} per response" if word else "uses of the spurious word")
            axes[2, col].legend(fontsize=7)
        axes[-1, col].set(xlabel=r"$d = \sqrt{KL(\pi \,\|\, \pi_0)}$")
    seed = config.get("seed")
    fig.suptitle("reward over-optimisation (Gao et al. 2023; docs/equations.md §8)"
                 + (f", seed {seed}" if seed is not None else ""), fontsize=10)
    fig.tight_layout()
    return fig


def overoptimisation_sweep_figure(sweep: Mapping,
                                  exact: Sequence[Mapping[str, float]] | None = None) -> "Figure":
    """A seed sweep (:func:`llmtrack.experiments.overoptimisation.run_overoptimisation_sweep`): every seed's gold
    gain against d = sqrt(KL(pi || pi_0)), one thin line per seed, for PPO against the proxy, PPO against the
    ensemble and Best-of-N (proxy, ensemble, and the gold reward itself in grey); a ring marks each curve's
    peak, filled where the curve over-optimises (rises and falls beyond 2 standard errors). ``exact``: rows
    of :func:`~llmtrack.experiments.overoptimisation.exact_proxy_optimum` (d, gold_gain), drawn dashed in
    black on every panel -- the exact optimum of the idealised proxy, against pi_ref."""
    import matplotlib.pyplot as plt

    panels = (("ppo", ("proxy",), "PPO vs the proxy"), ("ppo", ("ensemble",), "PPO vs the ensemble"),
              ("bon", ("oracle", "proxy", "ensemble"), "Best-of-N"))
    colours = {"proxy": "tab:red", "ensemble": "tab:blue", "oracle": "tab:gray"}
    seeds = list(sweep["seeds"])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    for ax, (method, scorers, title) in zip(axes, panels):
        for scorer in scorers:
            for i, seed in enumerate(seeds):
                run = sweep["runs"][seed]
                rows = run["curves"][method][scorer]
                d, gold = _column(rows, "d", f"{method}/{scorer}"), _column(rows, "gold_gain", f"{method}/{scorer}")
                c = colours[scorer]
                ax.plot(d, gold, "-", color=c, lw=0.9, alpha=0.7, label=scorer if i == 0 else None)
                if scorer != "oracle":
                    s = run["summary"][method][scorer]
                    ax.plot(s["d_at_peak"], s["gold_peak"], "o", ms=5, color=c,
                            mfc=c if s["overoptimised"] else "none")
        if exact is not None:
            ax.plot(_column(exact, "d", "exact"), _column(exact, "gold_gain", "exact"), "k--", lw=1,
                    label="exact optimum, idealised proxy")
        held = {s: sum(sweep["runs"][x]["summary"][method][s]["overoptimised"] for x in seeds)
                for s in scorers if s != "oracle"}
        ax.axhline(0, color="gray", lw=0.6)
        ax.set(title=title + " — over-optimises on " + ", ".join(f"{h}/{len(seeds)}" for h in held.values()),
               xlabel=r"$d = \sqrt{KL(\pi \,\|\, \pi_0)}$")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("gold reward − gold of π₀")
    fig.suptitle(f"reward over-optimisation over {len(seeds)} seeds (filled ring: rises and falls beyond 2 se)",
                 fontsize=10)
    fig.tight_layout()
    return fig


__all__ += ["overoptimisation_experiment_figure", "overoptimisation_sweep_figure"]
