"""The distillation lab's figure draws from a tiny synthetic lab (summarize_lab's output), one panel per part
present: markov's forward KL per method and N, GKD's beta x lambda grid, sort's expert accuracy."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from llmtrack.experiments.distillation import GRID, summarize_lab
from llmtrack.plots import distillation_lab_figure
from minirl.outputs import is_our_figure, save_figure


def _row(task, method, n, seed, beta=None, lmbda=None, **metrics):
    return {"task": task, "method": method, "beta": beta, "lmbda": lmbda, "labelled": n, "seed": seed,
            "teacher_queries": n, **metrics}


def _synthetic_lab() -> list[dict]:
    rows = []
    for seed in (0, 1):
        for n in (50, 200):
            kl = 10.0 / n + 0.1 * seed
            rows += [_row("markov", "sft", n, seed, forward_kl=kl), _row("markov", "dagger", n, seed, forward_kl=kl),
                     _row("markov", "kd", n, seed, 0.0, 0.0, forward_kl=kl / 100),
                     _row("markov", "rkl", n, seed, forward_kl=1.0)]
            grid = GRID if n == 200 else ((0.5, 1.0),)
            rows += [_row("markov", "gkd", n, seed, b, l, forward_kl=kl / 50 * (1 + b + l)) for b, l in grid]
        rows += [_row("sort", "sft", 200, seed, expert_accuracy=0.98), _row("sort", "dagger", 200, seed, expert_accuracy=0.95),
                 _row("sort", "gkd", 200, seed, 0.5, 1.0, expert_accuracy=0.99)]
    return rows


def test_the_figure_draws_every_panel_from_a_synthetic_lab(tmp_path):
    summary = summarize_lab(_synthetic_lab())
    fig = distillation_lab_figure(summary)
    line, grid, sort = fig.axes[:3]
    assert (line.get_xscale(), line.get_yscale()) == ("log", "log")
    labels = line.get_legend_handles_labels()[1]
    assert len(labels) == 5 and labels[0].startswith("SFT") and labels[-1].startswith("rkl")
    sft = line.lines[0]  # the first series' line: SFT's means at N = 50, 200
    np.testing.assert_allclose(sft.get_ydata(), [10 / 50 + 0.05, 10 / 200 + 0.05])
    image = grid.images[0].get_array()
    assert image.shape == (3, 3) and "N = 200" in grid.get_title()
    mean_kl = 10 / 200 + 0.05  # over the 2 seeds
    assert image[0, 0] == pytest.approx(mean_kl / 50)  # rows beta, columns lambda
    assert image[2, 1] == pytest.approx(mean_kl / 50 * 2.5)  # beta = 1, lambda = 0.5
    assert [t.get_text() for t in sort.get_xticklabels()] == ["sft", "dagger", "gkd"]
    assert any("100%" in t.get_text() for t in sort.texts)  # gkd beats SFT's accuracy on both seeds
    assert is_our_figure(save_figure(fig, tmp_path / "lab.png"))
    plt.close(fig)


def test_missing_parts_leave_their_panels_out_and_nothing_is_refused():
    markov_only = [r for r in _synthetic_lab() if r["task"] == "markov" and (r["labelled"] == 50)]
    fig = distillation_lab_figure(summarize_lab(markov_only))
    assert len(fig.axes) == 1  # no grid at N = 50, no sort
    plt.close(fig)
    with pytest.raises(ValueError, match="^summary:"):
        distillation_lab_figure([])


def test_students_of_several_sizes_are_summarised_apart_and_drawn_one_size_at_a_time():
    rows = _synthetic_lab()
    small = [{**r, "size": "small", "forward_kl": 2 * r["forward_kl"]} if "forward_kl" in r else {**r, "size": "small"}
             for r in rows]
    summary = summarize_lab(rows + small)
    assert len(summary) == 2 * len(summarize_lab(rows))  # the same groups again, per size
    sft_small = next(e for e in summary if (e["size"], e["method"], e["labelled"]) == ("small", "sft", 50))
    assert sft_small["forward_kl"] == pytest.approx(2 * (10 / 50 + 0.05))
    with pytest.raises(ValueError, match="^summary: has students of sizes"):
        distillation_lab_figure(summary)
