"""The reward over-optimisation experiment (llmtrack.experiments.overoptimisation; EQUATIONS.md §8).

The fast run's structure: Best-of-N and PPO curves against the proxy and the ensemble, finite numbers,
KL and proxy rising along PPO, Gao fits; the same seed gives the same numbers; bad settings are refused.
"""

import math

import matplotlib
import pytest
import torch

from llmtrack.alignment.overoptimisation import GaoFit
from llmtrack.alignment.plots import overoptimisation_experiment_figure
from llmtrack.experiments.overoptimisation import (ENSEMBLE_MEMBERS, METHODS, SCORERS, OveroptimisationConfig,
                                                   ensemble_members, fitted_peak, overoptimisation_table,
                                                   run_overoptimisation)
from llmtrack.experiments.overoptimisation import _PREF_SEED, _linear_head
from llmtrack.pipelines.recipe import make_pipeline_task
from llmtrack.reward_model import FrozenLMFeatures

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
    # "base_seeds" (the default): member 0 reads pi_0's features and fits the proxy's pairs, so it is the proxy
    assert config.ensemble_members == "base_seeds"
    assert rm["ensemble"]["member_accuracy"][0] == rm["proxy"]["accuracy"]
    assert len(set(rm["ensemble"]["member_accuracy"])) > 1
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


def test_ensemble_members():
    """base_seeds: member m is a head on base model base_seed + m fitted to the proxy's own pairs (member 0 = the
    proxy, bit for bit; the others see the same pairs through other features); bootstrap: heads on pi_0's
    features, each on its own resample."""
    task = make_pipeline_task("markov")
    config = OveroptimisationConfig.fast(ensemble_size=3)
    base = config.base_model(task)
    prefs = task.preferences(config.n_pairs, noise=config.noise, seed=_PREF_SEED + config.seed)
    features = FrozenLMFeatures(base, device="cpu")
    proxy = _linear_head(features, prefs, config.rm)
    members = ensemble_members(config, task, prefs, features)
    assert len(members) == 3 and torch.equal(members[0].w, proxy.w) and members[0].features is features
    phi = [m.features(prefs.chosen) for m in members]
    assert all(not torch.allclose(phi[0], p) for p in phi[1:])  # other base models, other features
    assert not any(torch.allclose(members[0].w, m.w) for m in members[1:])
    # each other member is the head that base model's own features give on the same pairs
    other = config.base_model(task, config.base_seed + 2)
    assert torch.equal(members[2].w, _linear_head(FrozenLMFeatures(other, device="cpu"), prefs, config.rm).w)
    boot = ensemble_members(OveroptimisationConfig.fast(ensemble_size=3, ensemble_members="bootstrap"), task, prefs,
                            features)
    assert all(m.features is features for m in boot)
    assert not torch.allclose(boot[0].w, boot[1].w) and not torch.allclose(boot[0].w, proxy.w)
    assert set(ENSEMBLE_MEMBERS) == {"base_seeds", "bootstrap"}


@pytest.mark.parametrize("field, value", [
    ("n_pairs", 0), ("noise", -0.1), ("noise", 0.5), ("seed", -1), ("ensemble_size", 1), ("ensemble_k", -1.0),
    ("bon_ns", (1, 2)), ("bon_ns", (0, 1, 2)), ("ppo_beta", 0.0), ("ppo_tokens", 0), ("eval_every", 0),
    ("n_eval", 1), ("size", "huge"), ("family", "rnn"), ("rm", "bt"), ("ppo_lr", float("nan")),
    ("ensemble_members", "laplace"), ("ensemble_members", None),
])
def test_bad_settings_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        OveroptimisationConfig(**{field: value})
    with pytest.raises(ValueError, match="config"):
        run_overoptimisation({"seed": 0})
