"""The annotation sweep of llmtrack.experiments.annotation: metric helpers against their oracles, mechanics,
determinism, refusals. No statistical claims (those are measured in docs/results/alignment.md). The best-of-N
pick it reports is minirl's best_of_first_n, tested by hand in tests/test_best_of_n.py."""

import pytest
import torch

from minirl.estimators import pair_accuracy
from llmtrack.experiments.annotation import AnnotationConfig, annotation_table, run_annotation_sweep
from llmtrack.pipelines.recipe import make_pipeline_task
from llmtrack.reward_model import gold_accuracy


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMTRACK_CACHE", str(tmp_path / "cache"))


def test_pair_accuracy_matches_gold_accuracy():
    task = make_pipeline_task("markov")
    prefs = task.preferences(300, noise=0.3, seed=3)

    class Arbitrary(torch.nn.Module):  # any deterministic score, with ties (a small integer range)
        def score(self, batch):
            return (batch.actions.long() * batch.mask).sum(1).remainder(7).double()

    model = Arbitrary()
    s_c, s_r = model.score(prefs.chosen), model.score(prefs.rejected)
    g_c, g_r = task.gold_reward(prefs.chosen).double(), task.gold_reward(prefs.rejected).double()
    assert (s_c == s_r).any()  # the tie rule is exercised
    assert pair_accuracy(s_c, s_r, g_c, g_r) == pytest.approx(gold_accuracy(model, prefs, task.gold_reward), abs=1e-12)
    assert pair_accuracy(g_c, g_r, g_c, g_r) == 1.0 and pair_accuracy(-g_c, -g_r, g_c, g_r) == 0.0


def test_annotation_sweep_mechanics_and_determinism():
    config = AnnotationConfig(fast=True, seeds=(0,), pair_counts=(40,), flips=(0.0,), temperatures=(2.0,),
                              bon_sizes=(2, 8), linear=AnnotationConfig().linear.__class__(n_updates=20, lr=5e-2))
    rows = run_annotation_sweep(config)
    assert [(r["label_model"], r["objective"]) for r in rows] == [
        (m, o) for m in ("flip", "temperature") for o in ("bt", "classification", "bt+ridge")]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and -1.0 <= r["correlation"] <= 1.0
        for n in (2, 8):  # the model's pick can never beat the gold pick among the same candidates
            assert r[f"bon{n}"] <= r[f"bon{n}_oracle"] + 1e-12
        assert r["bon8_oracle"] >= r["bon2_oracle"]
    assert rows[0]["label_accuracy"] == 1.0  # no flips, temperature 0 would be the gold order
    assert rows[3]["label_accuracy"] < 1.0  # temperature 2: some labels disagree with gold
    objectives = {r["objective"]: r for r in rows[:3]}
    assert objectives["bt"]["accuracy"] != objectives["bt+ridge"]["accuracy"] or \
        objectives["bt"]["correlation"] != objectives["bt+ridge"]["correlation"]  # the penalty is applied
    again = run_annotation_sweep(config)
    strip = [{k: v for k, v in r.items() if k != "train_s"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "train_s"} for r in again]
    table = annotation_table(rows)
    assert "classification" in table and "temperature 2" in table and "bon8" in table


@pytest.mark.parametrize("field, value", [("pair_counts", (1,)), ("pair_counts", ()), ("flips", (1.5,)),
                                          ("temperatures", (0.0,)), ("objectives", ("hinge",)), ("ridge", -1.0),
                                          ("bon_sizes", (0,)), ("bon_prompts", 1), ("seeds", (-1,)),
                                          ("n_eval_pairs", True)])
def test_annotation_config_refusals_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AnnotationConfig(**{field: value})
    with pytest.raises(ValueError, match="flips"):
        AnnotationConfig(flips=(), temperatures=())


def test_classification_is_bradley_terry_plus_a_ridge_on_the_pair_sum():
    """The module docstring's mechanism: L_cls(2v) = L_BT(v) + E[(v_a + v_b)^2] / 8 + O(v^4), with minirl's losses.
    The remainder shrinks 16-fold when the scores halve, and without the ridge term it would not be O(v^4)."""
    from minirl.algos.reward_model import bradley_terry_loss, classification_loss

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1000, generator=g, dtype=torch.float64), torch.randn(1000, generator=g, dtype=torch.float64)

    def remainder(eps, ridge=True):
        va, vb = eps * a, eps * b
        extra = ((va + vb) ** 2).mean() / 8 if ridge else 0.0
        return float(classification_loss(2 * va, 2 * vb) - bradley_terry_loss(va, vb) - extra)

    for eps in (0.1, 0.05):
        assert abs(remainder(eps)) < eps ** 4  # fourth order (log sigma has no cubic term)
    assert remainder(0.1) / remainder(0.05) == pytest.approx(16.0, rel=0.05)
    assert abs(remainder(0.1, ridge=False)) > 100 * abs(remainder(0.1))  # the ridge term is the second-order gap
