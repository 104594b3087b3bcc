"""``llmtrack pipeline`` and its stage commands: validation before work, the JSON convention,
the answer-key columns, and reproducibility (llmtrack.pipelines.alignment)."""

import json
import math

import pytest

from llmtrack.cli import main
from llmtrack.pipelines.alignment import METHODS, PipelineConfig, run_pipeline


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def fast_run(cache):
    return run_pipeline(PipelineConfig.fast(cache_dir=cache))


@pytest.mark.parametrize("field, value", [("task", "sort"), ("size", "huge"), ("family", "bert"), ("methods", ("rlhf",)),
                                          ("methods", ()), ("bon_n", 0), ("group_size", 1), ("preference_noise", 0.5),
                                          ("demo_beta", 0.0), ("rl_tokens", 0), ("seed", -1)])
def test_bad_fields_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"^{field}"):
        PipelineConfig(**{field: value})


def test_cli_refuses_before_any_work(capsys):
    assert main(["pipeline", "--task", "sort", "--json"]) == 2
    assert "error: task:" in capsys.readouterr().err
    assert main(["ppo", "--task", "markov", "--size", "tiny", "--json"]) == 2
    assert "error: size:" in capsys.readouterr().err
    assert main(["demo", "reward-noise", "--seeds", "0", "--json"]) == 2
    assert "error: --seeds:" in capsys.readouterr().err
    assert main(["demo", "classification-vs-bt", "--seeds", "0", "--json"]) == 2
    assert "error: --seeds:" in capsys.readouterr().err
    assert main(["demo", "overoptimisation", "--seeds", "0", "--json"]) == 2
    assert "error: --seeds:" in capsys.readouterr().err


def test_every_method_is_scored_against_the_answer_key(fast_run):
    s = fast_run.summary()
    assert set(s["methods"]) == set(METHODS)
    for name, row in s["methods"].items():
        for key in ("gold_reward", "kl_to_ref", "kl_to_optimum", "wall_s"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (name, key, row[key])
        assert row["kl_to_optimum"] > -3 * row["kl_to_optimum_se"]  # a KL, up to Monte-Carlo error
    opt = s["optimum"]
    assert opt["kl_to_optimum"] == 0.0 and opt["kl_to_ref"] > 0
    # the exact frontier bounds every point: E[R] - beta KL(pi || pi_ref) <= beta E log Z (answer_key bound II)
    beta = s["beta"]
    (row_at_beta,) = [r for r in s["frontier"] if r["beta"] == beta]
    bound = beta * row_at_beta["log_partition"]
    for name, row in s["methods"].items():
        slack = 4 * (row["gold_reward_se"] + beta * row["kl_to_ref_se"])
        assert row["gold_reward"] - beta * row["kl_to_ref"] <= bound + slack, name
    assert s["reward_model"]["accuracy"] > 0.6
    for name in ("sft", "afd"):  # the imitation pair also reports both KLs to its demonstrator
        assert {"forward_kl_to_demonstrator", "reverse_kl_to_demonstrator", "distinct_2",
                "entropy_per_token"} <= set(s["methods"][name])
    assert "optimum" in fast_run.table() and "best-of-16" in fast_run.table()


def test_a_stage_command_runs_what_it_needs_and_is_reproducible(cache, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("LLMTRACK_CACHE", cache)  # the base model the module already trained
    args = ["dpo", "--task", "markov", "--fast", "--json", "--out", str(tmp_path)]
    outs = []
    for _ in range(2):
        assert main(args + ["--seed", "1"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert list(outs[0]["methods"]) == ["dpo"] and outs[0]["reward_model"] is None
    strip = lambda o: {k: v for k, v in o["methods"]["dpo"].items() if "_s" not in k and "per_s" not in k}  # noqa: E731
    assert strip(outs[0]) == strip(outs[1])  # same seed, same numbers (timings aside)
    assert (tmp_path / "dpo_frontier.png").is_file()
