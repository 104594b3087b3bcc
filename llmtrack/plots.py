"""llmtrack's figures and text tables. Plotting lives apart from the pipelines: these functions read results only.

Each figure function is named after what it shows and returns a matplotlib Figure (matplotlib is
imported inside, so ``import llmtrack.plots`` stays light); each table function returns plain text.

    exposure_bias_figure          mistakes vs list length along the model's own generations; KL to the expert
    reward_noise_figure, annotation_figure
                                  reward models vs label noise; where classification beats Bradley-Terry
    optimal_frontier_figure       gold reward vs KL(pi || pi_ref): the exact optimum's curve (docs/equations.md §6)
                                  with any methods' points under it
    best_of_n_kl_figure           KL(pi_BoN || pi_ref) vs N against log N - (N - 1)/N (docs/equations.md §6)
    overoptimisation_figure       proxy and gold reward vs d = sqrt(KL) with Gao et al.'s fitted curves
                                  (docs/equations.md §8)
    overoptimisation_experiment_figure, overoptimisation_sweep_figure, overoptimisation_table,
    overoptimisation_sweep_table  the over-optimisation experiment: one seed; every seed of a sweep
    distillation_lab_figure       the distillation lab over seeds: forward KL to the teacher per method and N;
                                  GKD's beta x lambda grid; sort's expert accuracy (docs/equations.md §10)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from minirl.scaling_laws import GaoFit
    from llmtrack.experiments.exposure_bias import ExposureBiasResult

__all__ = ["exposure_bias_figure", "reward_noise_figure", "annotation_figure", "optimal_frontier_figure",
           "best_of_n_kl_figure", "overoptimisation_figure", "overoptimisation_experiment_figure",
           "overoptimisation_sweep_figure", "overoptimisation_table", "overoptimisation_sweep_table",
           "distillation_lab_figure"]

_COLORS = {"base": "tab:gray", "bc": "tab:red", "dagger": "tab:blue"}
_LABELS = {"base": "base model", "bc": "SFT (BC)", "dagger": "on-policy distillation (DAgger)"}


def exposure_bias_figure(result: "ExposureBiasResult") -> "Figure":
    """Sort: mistakes per sequence vs list length along each model's own generations (survey eq. 1),
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
               ylabel=r"mistakes per sequence $\ell(\pi)$ (survey eq. 1)",
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
    """Where classification beats Bradley-Terry (llmtrack.experiments.annotation):
    for each (pairs, label model) cell, classification - BT and BT with a ridge - BT, paired by seed, with
    +-2 standard-error bars; one panel per metric. A bar clear of zero by its error bar is a win.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    from llmtrack.experiments.annotation import summarize_annotation

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


# -- alignment and over-optimisation ---------------------------------------------------------------------

def _column(rows: Sequence[Mapping[str, float]], key: str, field: str = "rows") -> np.ndarray:
    if len(rows) == 0:
        raise ValueError(f"{field}: need at least one row")
    if any(key not in r for r in rows):
        raise ValueError(f"{field}: every row needs the key {key!r}")
    return np.array([float(r[key]) for r in rows])


def optimal_frontier_figure(frontier: Sequence[Mapping[str, float]],
                            points: Mapping[str, Sequence[Mapping[str, float]]] | None = None) -> "Figure":
    """Gold reward vs KL(pi || pi_ref) along the exact optimum pi*_beta (rows of
    :func:`~llmtrack.tasks.answer_key.optimal_frontier`), beta annotated; ``points`` maps a method's
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
    :func:`~llmtrack.pipelines.best_of_n.exact_best_of_n` (key "kl") and optional "kl_mc"/"kl_mc_se"."""
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
    two reward keys (:func:`~llmtrack.pipelines.best_of_n.best_of_n_curve` rows, or
    :func:`~llmtrack.pipelines.best_of_n.exact_best_of_n` rows with gold_key="gold_reward",
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


# -- tables of the over-optimisation experiment -----------------------------------------------------------------------------------------------

def _annotator_line(c: dict[str, Any], rm: dict[str, Any]) -> str:
    noise = f", then {c['noise']:.0%} flipped at random" if c["noise"] else ""
    return (f"annotator: gold + {c['annotator_bonus']:g} for mentioning {c['spurious_word']!r}{noise}; "
            f"{c['n_pairs']} pairs, {rm['against_gold']:.0%} of the labels against the gold order")


def overoptimisation_table(result: dict[str, Any]) -> str:
    """Plain text: the reward models, each curve's rows (d, proxy gain, gold gain, uses of the word), the Gao fits."""
    from llmtrack.experiments.overoptimisation import METHODS

    c, rm = result["config"], result["reward_models"]
    proxy, ens = rm["proxy"], rm["ensemble"]
    members = ", ".join(f"{a:.3f}" for a in ens["member_accuracy"])
    members_of = ("bootstraps" if c["ensemble_members"] == "bootstrap" else
                  f"heads on base models of seeds {c['base_seed']}-{c['base_seed'] + c['ensemble_size'] - 1}")
    lines = [f"Reward over-optimisation, markov task, seed {c['seed']}. " + _annotator_line(c, rm),
             f"proxy    held-out accuracy {proxy['accuracy']:.3f}, gold correlation {proxy['correlation']:.3f}",
             f"ensemble of {c['ensemble_size']} {members_of}, mean - {c['ensemble_k']:g} std: held-out accuracy "
             f"{ens['accuracy']:.3f}, gold correlation {ens['correlation']:.3f} (members {members})"]
    for method in METHODS:
        for scorer in result["curves"][method]:
            rows, s = result["curves"][method][scorer], result["summary"][method][scorer]
            verdict = "over-optimises" if s["overoptimised"] else "does not over-optimise"
            lines.append(f"\n{method} vs {scorer}: gold gain peaks at {s['gold_peak']:+.3f} "
                         f"(d = {s['d_at_peak']:.2f}), "
                         f"ends at {s['gold_final']:+.3f} (d = {s['d_final']:.2f}): {verdict} (rise {s['rise_z']:.1f} "
                         f"se, fall {s['fall_z']:.1f} se); uses of {c['spurious_word']!r} {s['mentions_start']:.2f} -> "
                         f"{s['mentions_final']:.2f}")
            fit = result["fits"][method].get(scorer)
            if fit is not None:
                lines.append(f"  Gao fit ({fit.form}): alpha = {fit.alpha:.3f}, beta = {fit.beta:.3f}, R^2 = "
                             f"{fit.r2:.3f}, fitted peak at d = {result['fitted_peak_d'][method][scorer]:.2f}")
            key = "n" if method == "bon" else "tokens"
            lines.append(f"  {key:>7} {'d':>5} {'score gain':>10} {'gold gain':>15} {'uses':>5}")
            for r in rows:
                lines.append(f"  {r[key]:>7} {r['d']:>5.2f} {r['proxy_gain']:>+10.3f} "
                             f"{r['gold_gain']:>+8.3f} ± {r['gold_gain_se']:.3f} {r['mentions']:>5.2f}")
    lines.append("\nclaims: " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in result["claims"].items()))
    if "wall_s" in result:
        lines.append("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items())
                     + f"; wall {result['wall_s']:.1f}")
    return "\n".join(lines)


def overoptimisation_sweep_table(sweep: dict[str, Any]) -> str:
    """Plain text: one line per seed (reward models, PPO's and BoN's gold gains), then the claims and effects as
    held/total. "PPO" columns: gold gain peak (d) -> end (d), "*" where the curve over-optimises; "BoN": gold gain
    at the largest N against the proxy / the ensemble / the gold reward (oracle)."""
    from llmtrack.experiments.overoptimisation import CLAIMS, EFFECTS, bon_row

    c = sweep["config"]
    first = sweep["runs"][sweep["seeds"][0]]
    n_max = c["bon_ns"][-1]
    lines = [f"Reward over-optimisation, markov task, {len(sweep['seeds'])} seeds; " +
             _annotator_line(c, first["reward_models"]).split("; ")[0] + f", {c['n_pairs']} pairs; ensemble of "
             f"{c['ensemble_size']} ({c['ensemble_members']}), mean - {c['ensemble_k']:g} std; PPO {c['ppo_tokens']} "
             f"tokens; BoN up to N = {n_max}",
             f"{'seed':>4} {'acc proxy/ens':>13} {'PPO vs proxy':>29} {'PPO vs ensemble':>29} "
             f"{'uses':>5} {'BoN proxy/ens/oracle':>21}"]

    def ppo(s: dict[str, Any]) -> str:
        return (f"{s['gold_peak']:+.2f} ({s['d_at_peak']:.2f}) -> {s['gold_final']:+.2f} ({s['d_final']:.2f})"
                + ("*" if s["overoptimised"] else " "))

    for seed in sweep["seeds"]:
        r = sweep["runs"][seed]
        rm, p, e = r["reward_models"], r["summary"]["ppo"]["proxy"], r["summary"]["ppo"]["ensemble"]
        bon = "/".join(f"{bon_row(r, s)['gold_gain']:+.2f}" for s in ("proxy", "ensemble", "oracle"))
        lines.append(f"{seed:>4} {rm['proxy']['accuracy']:>6.3f}/{rm['ensemble']['accuracy']:.3f} {ppo(p):>29} "
                     f"{ppo(e):>29} {p['mentions_final']:>5.2f} {bon:>21}")
    total = len(sweep["seeds"])
    lines.append("\nclaims (held/total):")
    lines += [f"  {held}/{total}  {name}: {CLAIMS[name][0]}" for name, (held, _) in sweep["claims"].items()]
    lines.append("effects (seeds where it holds):")
    lines += [f"  {held}/{total}  {name}: {EFFECTS[name][0]}" for name, (held, _) in sweep["effects"].items()]
    t = sweep["timings"]
    lines.append(f"timings (s): base models {t['base_model']:.1f}, per seed "
                 + ", ".join(f"{x:.0f}" for x in t["per_seed"]) + f"; wall {t['wall_s']:.1f}")
    return "\n".join(lines)


_PLAIN_DAGGER = {"labels": "expert", "cold_start": False}
_DISTILL_SERIES = (("sft", {}, "SFT (hard labels, teacher samples)", "tab:red", "o"),
                   ("dagger", _PLAIN_DAGGER, "DAgger (hard sampled labels, own states)", "tab:blue", "s"),
                   ("dagger", {"labels": "expert", "cold_start": True}, "DAgger + cold start", "tab:cyan", "s"),
                   ("dagger", {"labels": "coach", "cold_start": False}, "DAgger + coach", "tab:olive", "s"),
                   ("dagger", {"labels": "coach", "cold_start": True}, "DAgger + cold start + coach", "tab:gray", "s"),
                   ("kd", {"beta": 0.0, "lmbda": 0.0}, "KD (soft labels, teacher samples)", "tab:green", "^"),
                   ("gkd", {"beta": 0.5, "lmbda": 1.0}, r"GKD $\beta$=½, $\lambda$=1 (soft labels, own states)",
                    "tab:purple", "D"),
                   ("rkl", {"rl_gamma": 0.0}, r"rkl $\gamma$=0 (sampled-token reverse KL, own token)", "tab:orange", "v"),
                   ("rkl", {"rl_gamma": 1.0}, r"rkl $\gamma$=1 (sampled-token reverse KL, reward-to-go)", "tab:brown",
                    "<"))
"""(method, the summary fields that pick the series' entries, label, colour, marker)."""


def _lab_entry(summary: Sequence[Mapping[str, Any]], task: str, n: int, method: str,
               match: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The summary entry of (task, N, method) whose fields equal ``match`` (a DAgger entry without variant
    fields is plain DAgger; an rkl entry without ``rl_gamma`` is gamma = 0's)."""
    defaults = {"labels": "expert", "cold_start": False, "rl_gamma": 0.0}
    for e in summary:
        if (e["task"], e["labelled"], e["method"]) == (task, n, method) and all(
                (e.get(k) if e.get(k) is not None else defaults.get(k)) == v for k, v in match.items()):
            return e
    return None


def distillation_lab_figure(summary: Sequence[Mapping[str, Any]]) -> "Figure":
    """The distillation lab over seeds (docs/equations.md §10), from :func:`llmtrack.experiments.distillation.summarize_lab`.

    Left: markov's forward KL(teacher || student) of whole responses (log axis) per method against the
    labelled sequences N, mean +- standard error over seeds. Middle: GKD's forward KL over its beta x lambda
    grid at the largest N where the grid ran. Right (when the summary has sort rows): sort's expert
    accuracy per method, with the fraction of seeds beating SFT. A panel whose rows are missing is left out.
    """
    import matplotlib.pyplot as plt

    if len(summary) == 0:
        raise ValueError("summary: need at least one entry")
    sizes = sorted({e.get("size", "nano") for e in summary})
    if len(sizes) > 1:
        raise ValueError(f"summary: has students of sizes {sizes}; draw one size at a time")
    markov = [e for e in summary if e["task"] == "markov" and e.get("forward_kl") is not None]
    grids = {n: [e for e in markov if e["labelled"] == n and e["method"] == "gkd"] for n in {e["labelled"] for e in markov}}
    grid_n = max((n for n, es in grids.items() if len(es) > 1), default=None)
    sort = [e for e in summary if e["task"] == "sort" and e.get("expert_accuracy") is not None]
    panels = [name for name, present in (("line", markov), ("grid", grid_n), ("sort", sort)) if present]
    if not panels:
        raise ValueError("summary: no markov forward KL and no sort expert accuracy to draw")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 5.4), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    if "line" in axes:
        ax = axes["line"]
        ns = sorted({e["labelled"] for e in markov})
        for method, match, label, color, marker in _DISTILL_SERIES:
            found = [(n, e) for n in ns if (e := _lab_entry(markov, "markov", n, method, match)) is not None]
            if found:
                x = [n for n, _ in found]
                y = np.array([e["forward_kl"] for _, e in found])
                se = np.array([e.get("forward_kl_se", 0.0) for _, e in found])
                lower = np.minimum(se, 0.9 * y)  # a bar below zero has no place on a log axis: clipped at y/10
                ax.errorbar(x, y, yerr=[lower, se], fmt=marker + "-", color=color, capsize=3, label=label)
        ax.set(xscale="log", yscale="log", xticks=ns, xticklabels=[str(n) for n in ns],
               xlabel="labelled sequences N", ylabel="forward KL(teacher || student) of responses (nats)",
               title="markov: distance to the teacher")
        ax.minorticks_off()
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)  # below: the lines fill the axes
    if "grid" in axes:
        ax = axes["grid"]
        betas = sorted({e["beta"] for e in grids[grid_n]})
        lmbdas = sorted({e["lmbda"] for e in grids[grid_n]})
        table = np.full((len(betas), len(lmbdas)), np.nan)
        for e in grids[grid_n]:
            table[betas.index(e["beta"]), lmbdas.index(e["lmbda"])] = e["forward_kl"]
        image = ax.imshow(table, cmap="viridis", origin="lower", aspect="auto")
        for (i, j), value in np.ndenumerate(table):
            e = _lab_entry(markov, "markov", grid_n, "gkd", {"beta": betas[i], "lmbda": lmbdas[j]})
            if e is not None:
                ax.text(j, i, f"{value:.4f}\n± {e.get('forward_kl_se', 0.0):.4f}", ha="center", va="center",
                        fontsize=8, color="white" if value < np.nanmean(table) else "black")
        ax.set(xticks=range(len(lmbdas)), xticklabels=[f"{x:g}" for x in lmbdas], yticks=range(len(betas)),
               yticklabels=[f"{x:g}" for x in betas], xlabel=r"on-policy fraction $\lambda$",
               ylabel=r"JSD($\beta$): 0 = forward KL, 1 = reverse KL",
               title=f"markov: GKD's forward KL at N = {grid_n}")
        fig.colorbar(image, ax=ax, label="forward KL (nats)")
    if "sort" in axes:
        ax = axes["sort"]
        n = max(e["labelled"] for e in sort)
        found = [(label, color, e) for method, match, label, color, _ in _DISTILL_SERIES
                 if (e := _lab_entry(sort, "sort", n, method, match)) is not None]
        x = np.arange(len(found))
        ax.bar(x, [e["expert_accuracy"] for *_, e in found], yerr=[e.get("expert_accuracy_se", 0.0) for *_, e in found],
               color=[c for _, c, _ in found], capsize=3)
        bottom = max(0.0, min(e["expert_accuracy"] for *_, e in found) - 0.1)
        for i, (_, _, e) in enumerate(found):
            if e["method"] != "sft":
                ax.text(i, bottom + 0.01, f"beats\nSFT:\n{e['beats_sft']:.0%}", ha="center", va="bottom",
                        fontsize=6, color="white")
        names = {"DAgger + cold start": "DAgger\n+ cold", "DAgger + coach": "DAgger\n+ coach",
                 "DAgger + cold start + coach": "DAgger\n+ cold\n+ coach"}
        ax.set(xticks=x, xticklabels=[names.get(label, e["method"]) for label, _, e in found], ylim=(bottom, 1.0),
               ylabel="expert accuracy (share of the teacher's tokens)",
               title=f"sort (deterministic teacher): N = {n}")
    fig.suptitle(f"distillation lab: mean ± standard error over {max(e['seeds'] for e in summary)} seeds", fontsize=10)
    fig.tight_layout()
    return fig
