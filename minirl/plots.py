"""Figures. Plotting lives apart from the algorithms: these functions read results only.

Each function is named after what it shows and returns a matplotlib Figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # keep `import minirl.plots` free of experiment imports
    from matplotlib.figure import Figure

    from minirl.experiments.cartpole_imitation import CartPoleImitationResult
    from minirl.experiments.compounding_error import CompoundingErrorResult

__all__ = ["compounding_error_figure", "cartpole_imitation_figure", "f_divergence_figure", "reward_transfer_figure",
           "imitation_figure"]

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
           ylabel=r"mistakes $\ell(\pi)$ along own rollouts (survey eq. 1)",
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


def cartpole_imitation_figure(result: "CartPoleImitationResult") -> "Figure":
    """Return and mistake rate against expert-labelled steps, BC vs DAgger, on CartPole-v1.

    Left: 500-step return (mean +- 1 std over seeds, shaded), the expert's return as a line;
    BC's points are annotated with their number of demonstrations, DAgger's with their round.
    Right: the per-step disagreement with the expert along each learner's own roll-outs.
    """
    import matplotlib.pyplot as plt

    c, s = result.config, result.summary()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    annotations = {"bc": [f"{n}" for n in c.n_demos], "dagger": [f"it{i}" for i in result.iterations]}
    names = {"bc": f"{_LABELS['bc']} (n demos)", "dagger": f"{_LABELS['dagger']} (round)"}
    panels = ((axes[0], result.returns, f"return over {s['eval_steps']} steps", s["eval_steps"]),
              (axes[1], result.mistake_rate, "mistakes per step along own roll-outs", 1.0))
    for ax, values, ylabel, top in panels:
        for m in ("bc", "dagger"):
            x = result.labelled_steps[m].mean(0)
            mean, std = values[m].mean(0), values[m].std(0)
            ax.plot(x, mean, "o-", color=_COLORS[m], label=names[m])
            ax.fill_between(x, np.clip(mean - std, 0, top), np.clip(mean + std, 0, top), color=_COLORS[m],
                            alpha=0.2, lw=0)
            if ax is axes[0]:
                offset, last = ((0, 7) if m == "bc" else (0, -13)), -np.inf
                for xi, yi, text in zip(x, mean, annotations[m]):
                    if np.log10(xi) - last >= 0.1:  # thin out labels that would overlap on the log axis
                        ax.annotate(text, (xi, yi), textcoords="offset points", xytext=offset, ha="center",
                                    fontsize=7, color=_COLORS[m])
                        last = np.log10(xi)
        ax.set(xscale="log", xlabel=f"expert-labelled steps (log scale; episodes cut at {c.episode_steps})",
               ylabel=ylabel)
        ticks = sorted(set(np.round(result.labelled_steps["bc"].mean(0)).astype(int).tolist()))
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
    axes[0].axhline(s["expert_return"], color="k", ls="--", label="expert")
    axes[0].set(ylim=(0, 1.08 * s["eval_steps"]), title=f"BC vs DAgger on CartPole-v1, MLP {c.hidden}: mean ± std, {c.n_seeds} seeds")
    axes[1].set(ylim=(0, None), title="Disagreement with the expert on the learner's own states")
    for ax in axes:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def f_divergence_figure(result: dict) -> "Figure":
    """Left: the bimodal expert and each method's single Gaussian. Right: each method's own divergence in training."""
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.asarray(result["grid"])
    ax.fill_between(x, result["expert"], color="0.8", label="expert (two modes)")
    for method, style in (("fairl", "-"), ("gail", "--"), ("airl", ":")):
        r = result[method]
        ax.plot(x, r["probs"], style, lw=2, label=f"{method.upper()}: fwd KL {r['forward_kl']:.2f}, "
                                                  f"rev KL {r['reverse_kl']:.2f}")
        ax2.semilogy(np.maximum(np.asarray(r["history"]) - min(r["history"]) + 1e-6, 1e-6), style,
                     label=f"{method.upper()} (own divergence - its minimum)")
    ax.set_xlim(-5, 5)
    ax.set_xlabel("action")
    ax.set_ylabel("probability")
    ax.set_title("mass-covering (FAIRL) vs mode-seeking (AIRL)")
    ax.legend(fontsize=8)
    ax2.set_xlabel("policy-gradient step (optimal discriminator)")
    ax2.set_title("each method descends its own f-divergence")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reward_transfer_figure(result: dict) -> "Figure":
    """True reward, AIRL's g(s) and GAIL's max_a r(h(s, a)) on the grid; true returns before and after the change."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    learned = {"true reward": None, "AIRL g(s)": result["airl"]["learned_reward"],
               "GAIL max_a r(h)": result["gail"]["learned_reward"]}
    side = int(round(np.sqrt(len(result["airl"]["learned_reward"]))))
    for ax, (title, values) in zip(axes, learned.items()):
        grid = np.zeros(side * side) if values is None else np.asarray(values)
        if values is None:
            grid[-1] = 1.0  # the goal cell (bottom right)
        im = ax.imshow(grid.reshape(side, side), cmap="viridis")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[3]
    methods = ("expert", "airl", "gail", "bc")
    columns = ("return_original", "return_changed", "return_mirrored")
    width = 0.25
    for i, c in enumerate(columns):
        ax.bar(np.arange(4) + (i - 1) * width, [result[m][c] for m in methods], width,
               label=c.replace("return_", "").replace("changed", "walled"))
    ax.set_xticks(np.arange(4), [m.upper() if m != "expert" else m for m in methods])
    ax.set_ylabel("true discounted return")
    ax.set_title("true return, reward re-optimised")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def imitation_figure(result: "Any") -> "Figure":
    """True return against environment steps for each seed of one imitation run, with the expert's level."""
    import matplotlib.pyplot as plt

    if hasattr(result, "results"):  # algo="all": every method's mean curve on one plot
        return _imitation_table_figure(result)
    fig, ax = plt.subplots(figsize=(6, 4))
    s = result.summary()
    for seed, curve in zip(s["seeds"], s["curves"]):
        steps, returns = zip(*curve)
        ax.plot(steps, returns, "o-", ms=3, label=f"seed {seed}")
    ax.axhline(s["expert_return"], color="k", ls="--", lw=1, label="expert")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("true return (greedy, 10 episodes)")
    ax.set_title(f"{s['algo'].upper()} on {s['env']} from {s['n_demos']} demonstrations (reward hidden)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _imitation_table_figure(table: "Any") -> "Figure":
    """Mean (over seeds) true return against env steps for the adversarial methods; BC and DAgger as points."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    expert = None
    for algo, result in table.results.items():
        s = result.summary()
        expert = s["expert_return"]
        length = min(len(c) for c in s["curves"])
        steps = np.mean([[p[0] for p in c[:length]] for c in s["curves"]], axis=0)
        returns = np.array([[p[1] for p in c[:length]] for c in s["curves"]])  # (seeds, points)
        if length == 1:
            ax.errorbar(steps, returns.mean(0), yerr=returns.std(0), fmt="s", ms=7, capsize=3,
                        label=f"{algo.upper()} ({s['env_steps']} env steps)")
            continue
        line, = ax.plot(steps, returns.mean(0), "-", lw=2, label=algo.upper())
        ax.fill_between(steps, returns.min(0), returns.max(0), color=line.get_color(), alpha=0.15)
    ax.axhline(expert, color="k", ls="--", lw=1, label="expert")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("true return (mean over seeds; band: min-max)")
    s = next(iter(table.results.values())).summary()
    ax.set_title(f"{s['env']}: imitation from {s['n_demos']} demonstrations, reward hidden")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
