"""The reward over-optimisation experiment (llmtrack.experiments.overoptimisation; EQUATIONS.md §8).

The fast run's structure: Best-of-N and PPO curves against the proxy and the ensemble, finite numbers,
KL and proxy rising along PPO, Gao fits; the same seed gives the same numbers; bad settings are refused.
"""

import math

import matplotlib
import pytest

from llmtrack.alignment.overoptimisation import GaoFit
from llmtrack.alignment.plots import overoptimisation_experiment_figure
from llmtrack.experiments.overoptimisation import (METHODS, SCORERS, OveroptimisationConfig, fitted_peak,
                                                   overoptimisation_table, run_overoptimisation)

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def fast():
    return run_overoptimisation(OveroptimisationConfig.fast())


def _finite(row):
    return all(math.isfinite(v) for v in row.values() if isinstance(v, float))


def test_fast_run_structure(fast):
    config = OveroptimisationConfig.fast()
    assert set(fast["curves"]) == set(METHODS) and all(set(fast["curves"][m]) == set(SCORERS) for m in METHODS)
    for scorer in SCORERS:
        bon = fast["curves"]["bon"][scorer]
        assert [r["n"] for r in bon] == list(config.bon_ns)
        assert bon[0]["kl"] == 0.0 and bon[0]["gold_gain"] == pytest.approx(0.0, abs=1e-12)
        assert all(b["kl"] > a["kl"] for a, b in zip(bon, bon[1:]))  # log N - (N - 1)/N
        assert all(b["proxy_gain"] > a["proxy_gain"] for a, b in zip(bon, bon[1:]))  # BoN raises its own score
        ppo = fast["curves"]["ppo"][scorer]
        assert len(ppo) >= 4 and ppo[0]["tokens"] == 0 and ppo[-1]["tokens"] >= config.ppo_tokens
        assert all(b["tokens"] > a["tokens"] for a, b in zip(ppo, ppo[1:]))
        assert all(_finite(r) for r in bon + ppo)
        assert all(r["d"] == pytest.approx(math.sqrt(max(r["kl"], 0.0))) for r in ppo)
        # along training the policy moves away from pi_0 and its own score rises
        kl, proxy = [r["kl"] for r in ppo], [r["proxy"] for r in ppo]
        assert kl[0] == pytest.approx(0.0, abs=1e-6) and kl[-1] > 1.0
        assert sum(b > a for a, b in zip(kl, kl[1:])) >= 0.7 * (len(kl) - 1)
        assert proxy[-1] > proxy[0] + 1.0 and sum(b > a for a, b in zip(proxy, proxy[1:])) >= 0.7 * (len(proxy) - 1)
        for method in METHODS:
            fit = fast["fits"][method][scorer]
            assert isinstance(fit, GaoFit) and fit.form == ("bon" if method == "bon" else "rl")
            assert math.isfinite(fit.alpha) and math.isfinite(fit.beta) and fit.r2 <= 1.0
            assert fast["fitted_peak_d"][method][scorer] == fitted_peak(fit)
            assert set(fast["summary"][method][scorer]) >= {"gold_peak", "d_at_peak", "gold_final", "fall"}
    rm = fast["reward_models"]
    assert 0.0 <= rm["proxy"]["accuracy"] <= 1.0 and len(rm["ensemble"]["member_accuracy"]) == config.ensemble_size
    assert 0.2 < rm["flipped"] < 0.45  # noise 0.3 on 100 pairs
    assert "bon vs proxy" in overoptimisation_table(fast)
    fig = overoptimisation_experiment_figure(fast)
    assert len(fig.axes) == 4
    matplotlib.pyplot.close(fig)


def test_fitted_peak_formulas():
    assert fitted_peak(GaoFit(1.0, 0.25, 1.0, "bon")) == pytest.approx(2.0)  # d (a - b d): peak a / 2b
    assert fitted_peak(GaoFit(1.0, 0.5, 1.0, "rl")) == pytest.approx(math.e)  # d (a - b log d): exp(a/b - 1)
    assert fitted_peak(GaoFit(1.0, -0.1, 1.0, "rl")) == math.inf


def test_same_seed_same_numbers():
    tiny = dict(bon_ns=(1, 2, 4), bon_prompts=4, ppo_tokens=200, ppo_prompts=8, n_eval=50, n_eval_pairs=50,
                ensemble_size=2, eval_every=2)
    a, b = (run_overoptimisation(OveroptimisationConfig.fast(**tiny)) for _ in range(2))
    for key in ("curves", "reward_models", "summary", "config"):
        assert a[key] == b[key], key
    assert [tuple(f) for m in METHODS for f in a["fits"][m].values()] == \
        [tuple(f) for m in METHODS for f in b["fits"][m].values()]
    assert len(a["curves"]["ppo"]["proxy"]) >= 2 and a["timings"].keys() == b["timings"].keys()


@pytest.mark.parametrize("field, value", [
    ("n_pairs", 0), ("noise", -0.1), ("noise", 0.5), ("seed", -1), ("ensemble_size", 1), ("ensemble_k", -1.0),
    ("bon_ns", (1, 2)), ("bon_ns", (0, 1, 2)), ("ppo_beta", 0.0), ("ppo_tokens", 0), ("eval_every", 0),
    ("n_eval", 1), ("size", "huge"), ("family", "rnn"), ("rm", "bt"), ("ppo_lr", float("nan")),
])
def test_bad_settings_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        OveroptimisationConfig(**{field: value})
    with pytest.raises(ValueError, match="config"):
        run_overoptimisation({"seed": 0})
