"""``llmtrack distill`` and ``llmtrack demo kl-estimators``: bad input refused before any work, naming the
field; the estimator demo's JSON states which combinations give the exact gradient (docs/equations.md §10, §11)."""

import json

import pytest

from llmtrack.cli import main
from llmtrack.pipelines.distillation import DistillRunConfig


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMTRACK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("argv,option", [
    (["--task", "markov", "--beta", "1.5"], "--beta"), (["--task", "markov", "--beta", "-0.1"], "--beta"),
    (["--task", "markov", "--lmbda", "2"], "--lmbda"), (["--task", "markov", "--rl-gamma", "1.5"], "--rl-gamma"), (["--task", "markov", "--labelled", "0"], "--labelled"),
    (["--task", "sort", "--method", "rkl"], "method"), (["--task", "sort", "--method", "gkd", "--beta", "1"], "beta"),
    (["--task", "markov", "--method", "ppo"], "method"), (["--task", "chess"], "task"),
    (["--task", "markov", "--size", "huge"], "size")])
def test_bad_input_is_one_line_naming_the_field(argv, option, capsys, cache):
    assert main(["distill", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and f"error: {option}:" in lines[0], captured.err
    assert not cache.exists()  # no work: not even the cache folder


def test_config_defaults_and_effective_settings():
    assert DistillRunConfig(task="markov").labelled == 1000
    assert DistillRunConfig(task="sort").labelled == 200
    kd = DistillRunConfig(method="kd", beta=0.7, lmbda=0.3)
    assert (kd.effective_beta, kd.effective_lmbda) == (0.0, 0.0)
    assert DistillRunConfig(method="sft").effective_beta is None
    with pytest.raises(ValueError, match="^labelled:"):
        DistillRunConfig(method="gkd", labelled=3)  # fewer sequences than rounds


def test_kl_estimator_demo_json(capsys):
    assert main(["demo", "kl-estimators", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    unbiased = {(r["estimator"], r["placement"]) for r in out["rows"] if r["unbiased_gradient"]}
    assert unbiased == {("k1", "reward")}
    rows = {(r["estimator"], r["placement"]): r for r in out["rows"]}
    assert abs(rows["k1", "reward"]["bias"]) < 1e-6 and abs(rows["k3", "loss"]["bias"]) < 1e-6
    assert rows["k2", "reward"]["bias"] < -0.1  # k2 underestimates here
    assert rows["k1", "loss"]["grad_norm"] < 1e-6 * out["exact_grad_norm"]  # zero gradient in expectation


def test_every_method_asks_the_teacher_about_exactly_the_labelled_sequences(cache):
    """Labels are stored once (hard ones by DAgger, distributions by train_gkd), so equal labelled
    sequences are equal teacher queries: N for every method, not N per minibatch."""
    from llmtrack.pipelines.distillation import METHODS, rl_batch_sizes, run_distill

    for method in METHODS:
        out = run_distill(DistillRunConfig(task="markov", method=method, labelled=10, rounds=2, updates=6,
                                           batch_size=4, rl_batch=4, n_eval=8), cache_dir=str(cache))
        assert out["teacher_queries"] == 10, (method, out["teacher_queries"])  # rkl: batches of 4, 4 and 2
        assert out["labelled"] == 10 and out["forward_kl"] is not None
    assert rl_batch_sizes(50, 20) == [20, 20, 10] and rl_batch_sizes(41, 20) == [20, 21] and rl_batch_sizes(7, 20) == [7]
