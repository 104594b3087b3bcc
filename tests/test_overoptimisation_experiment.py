"""The reward over-optimisation experiment (llmtrack.experiments.overoptimisation; docs/equations.md §8).

What is tested is math and structure, not one seed's outcome: the annotator's labels follow its rule;
the exact optimum of the idealised proxy has the shape the design rests on (an interior gold peak with
the bonus, none without); the over-optimisation rule on hand-made curves; a
small run's and a small sweep's structure (the sweep's claims are counts, a seed's run is the same alone
or in a sweep); bad settings are refused by name. The seed-sweep fractions themselves are measured in
docs/results/overoptimisation.md and asserted by notebook 08.
"""

import math

import matplotlib
import numpy as np
import pytest
import torch

from minirl.data import TrajectoryBatch
from minirl.scaling_laws import GaoFit, fitted_peak
from llmtrack.experiments.overoptimisation import (CLAIMS, EFFECTS, ENSEMBLE_MEMBERS, METHODS, SCORERS, VOCABULARY,
                                                   OveroptimisationConfig, annotated_preferences, annotator_reward,
                                                   curve_summary, ensemble_members, exact_proxy_optimum,
                                                   member_features, mentions, overoptimisation_claims,
                                                   run_overoptimisation, run_overoptimisation_sweep)
from llmtrack.pipelines.recipe import make_pipeline_task
from llmtrack.plots import (overoptimisation_experiment_figure, overoptimisation_sweep_figure,
                            overoptimisation_sweep_table, overoptimisation_table)
from llmtrack.reward_model import fit_linear_head
from llmtrack.tokenizer import BOS, SPECIAL_TOKENS

matplotlib.use("Agg")

TINY = dict(bon_ns=(1, 2, 4), bon_prompts=4, ppo_tokens=300, ppo_prompts=8, n_eval=40, n_eval_pairs=40, n_pairs=60,
            ensemble_size=2, eval_every=2)


@pytest.fixture(scope="module")
def task():
    return make_pipeline_task("markov")


def _responses(words: list[list[str]], task) -> TrajectoryBatch:
    """Hand-written responses (each padded with [EOS] and masked after it), prompt [BOS, "great"]."""
    first, T = len(SPECIAL_TOKENS), max(len(w) for w in words)
    ids = [[first + task.words.index(w) for w in ws] for ws in words]
    actions = torch.tensor([a + [0] * (T - len(a)) for a in ids])
    mask = torch.tensor([[j < len(a) for j in range(T)] for a in ids])
    obs = torch.cat([torch.tensor([[BOS, first + 1]] * len(ids)), actions], dim=1)
    return TrajectoryBatch(obs=obs, actions=actions, mask=mask)


# -- the annotator ------------------------------------------------------------------------------------------

def test_annotator_reward_is_gold_plus_a_bonus_once(task):
    config = OveroptimisationConfig(annotator_bonus=3.0)
    y = _responses([["great", "food"], ["food", "food", "food"], ["awful"], ["food"]], task)
    assert mentions(y, config.word_id).tolist() == [1.0, 3.0, 0.0, 1.0]
    gold = task.gold_reward(y).double()
    torch.testing.assert_close(gold, torch.tensor([0.9 - 0.1, -0.3, -1.1, -0.1], dtype=torch.float64))
    torch.testing.assert_close(annotator_reward(task, y, config.word_id, 3.0), gold + torch.tensor([3.0, 3, 0, 3]))


@pytest.mark.parametrize("bonus, noise", [(3.0, 0.0), (0.0, 0.0), (3.0, 0.2)])
def test_annotated_preferences_follow_the_rule(task, bonus, noise):
    config = OveroptimisationConfig(annotator_bonus=bonus, noise=noise, n_pairs=300, seed=1)
    prefs = annotated_preferences(task, config)
    c, r = prefs.chosen, prefs.rejected
    info = c.info
    a_c, a_r = (annotator_reward(task, b, config.word_id, bonus) for b in (c, r))
    g_c, g_r = info["gold_reward"].double(), r.info["gold_reward"].double()
    flipped = info["flipped"]
    # unflipped labels prefer the larger annotator reward (a tie keeps the gold order); flipped ones the smaller
    assert bool(((a_c >= a_r) | flipped).all()) and bool(((a_c <= a_r) | ~flipped).all())
    assert bool((info["against_gold"] == (g_c < g_r)).all()) and bool((g_c != g_r).all())
    if noise == 0.0:
        assert not flipped.any()
    else:
        assert abs(float(flipped.double().mean()) - noise) < 0.08
    if bonus == 0.0 and noise == 0.0:  # the honest annotator is the gold order
        assert not info["against_gold"].any()
    if bonus > 0 and noise == 0.0:  # every label against gold is one the bonus explains: the chosen mentions the word
        against = info["against_gold"]
        assert against.any()
        m_c, m_r = mentions(c, config.word_id), mentions(r, config.word_id)
        assert bool(((m_c[against] > 0) & (m_r[against] == 0)).all())
        assert bool((g_r - g_c)[against].le(bonus).all())


# -- the exact optimum of the idealised proxy -----------------------------------------------------------------

BETAS = [float(b) for b in np.geomspace(100.0, 0.01, 25)]


def test_exact_optimum_without_bonus_rises_monotonically():
    """b = 0: the idealised proxy is the gold reward, and along the KL-regularised optimum E[r] rises as beta
    falls (a theorem), and so does KL; no interior peak."""
    rows = exact_proxy_optimum(OveroptimisationConfig(annotator_bonus=0.0), BETAS)
    gold, kl = np.array([r["gold"] for r in rows]), np.array([r["kl"] for r in rows])
    assert np.all(np.diff(gold) > -1e-9) and np.all(np.diff(kl) > -1e-9)
    assert rows[0]["gold_gain"] == pytest.approx(0.0, abs=0.02) and rows[-1]["gold_gain"] > 8.5  # ten positive words
    assert [r["proxy"] for r in rows] == [r["gold"] for r in rows]


def test_exact_optimum_with_the_bonus_peaks_and_falls():
    """b = 3 per use of "food": E[r_b] still rises as beta falls, but the gold gain peaks inside and ends at ten
    uses of "food" (gold 10 x -0.1 = -1, below pi_ref's)."""
    config = OveroptimisationConfig()
    rows = exact_proxy_optimum(config, BETAS)
    proxy, gold = np.array([r["proxy"] for r in rows]), np.array([r["gold_gain"] for r in rows])
    assert np.all(np.diff(proxy) > -1e-9)
    peak = int(gold.argmax())
    assert 0 < peak < len(rows) - 1 and gold[peak] > 0.5
    assert rows[-1]["mentions"] == pytest.approx(10.0, abs=0.01) and rows[-1]["gold"] == pytest.approx(-1.0, abs=0.01)
    assert rows[-1]["gold_gain"] < -0.8
    with pytest.raises(ValueError, match="betas"):
        exact_proxy_optimum(config, [1.0, 0.0])


# -- the over-optimisation rule -----------------------------------------------------

def _rows(gains, se=0.1):
    return [{"gold_gain": g, "gold_gain_se": 0.0 if i == 0 else se, "d": float(i), "proxy_gain": float(i),
             "mentions": float(i)} for i, g in enumerate(gains)]


def test_curve_summary_rule():
    s = curve_summary(_rows([0.0, 0.5, 1.0, 0.4, -0.2]))
    assert s["overoptimised"] and s["interior_peak"] and s["gold_peak"] == 1.0 and s["d_at_peak"] == 2.0
    assert s["rise_z"] == pytest.approx(1.0 / 0.1) and s["fall_z"] == pytest.approx(1.2 / math.hypot(0.1, 0.1))
    assert s["fall"] == pytest.approx(1.2) and s["mentions_final"] == 4.0 and s["proxy_at_peak"] == 2.0
    assert not curve_summary(_rows([0.0, 0.5, 1.0, 1.5]))["overoptimised"]  # still rising
    assert not curve_summary(_rows([0.0, 0.5, 1.0, 0.8]))["overoptimised"]  # falls by 0.2 < 2 x 0.14
    assert not curve_summary(_rows([0.0, 0.15, -0.5]))["overoptimised"]  # never rises beyond noise
    assert fitted_peak(GaoFit(1.0, 0.25, 1.0, "bon")) == pytest.approx(2.0)  # d (a - b d): peak a / 2b
    assert fitted_peak(GaoFit(1.0, 0.5, 1.0, "rl")) == pytest.approx(math.e)  # d (a - b log d): exp(a/b - 1)
    assert fitted_peak(GaoFit(1.0, -0.1, 1.0, "rl")) == math.inf


# -- a run and a sweep: structure -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sweep():
    return run_overoptimisation_sweep(OveroptimisationConfig.fast(**TINY), seeds=(3, 5))


def _finite(row):
    return all(math.isfinite(v) for v in row.values() if isinstance(v, float))


def test_run_structure(sweep):
    config = OveroptimisationConfig.fast(**TINY)
    run = sweep["runs"][3]
    assert set(run["curves"]["bon"]) == {*SCORERS, "oracle"} and set(run["curves"]["ppo"]) == set(SCORERS)
    for scorer in (*SCORERS, "oracle"):
        bon = run["curves"]["bon"][scorer]
        assert [r["n"] for r in bon] == list(config.bon_ns) and bon[0]["gold_gain"] == pytest.approx(0.0, abs=1e-12)
        assert all(b["kl"] > a["kl"] for a, b in zip(bon, bon[1:]))  # log N - (N - 1)/N
        assert all(b["proxy_gain"] >= a["proxy_gain"] for a, b in zip(bon, bon[1:]))  # BoN raises its own score
        assert bon[0]["mentions"] == pytest.approx(run["curves"]["bon"]["proxy"][0]["mentions"])  # one pool
    oracle, proxy = run["curves"]["bon"]["oracle"], run["curves"]["bon"]["proxy"]
    assert all(o["gold"] >= p["gold"] - 1e-9 for o, p in zip(oracle, proxy))  # the gold's own pick is the best
    for scorer in SCORERS:
        ppo = run["curves"]["ppo"][scorer]
        assert len(ppo) >= 2 and ppo[0]["tokens"] == 0 and ppo[-1]["tokens"] >= config.ppo_tokens
        assert all(b["tokens"] > a["tokens"] for a, b in zip(ppo, ppo[1:]))
        assert all(_finite(r) for r in ppo + run["curves"]["bon"][scorer])
        assert all(r["d"] == pytest.approx(math.sqrt(max(r["kl"], 0.0))) for r in ppo)
        assert ppo[0]["kl"] == pytest.approx(0.0, abs=1e-6) and ppo[0]["gold_gain"] == 0.0
        for method in METHODS:
            fit = run["fits"][method][scorer]
            assert isinstance(fit, GaoFit) and fit.form == ("bon" if method == "bon" else "rl")
            assert run["fitted_peak_d"][method][scorer] == fitted_peak(fit)
            assert run["summary"][method][scorer] == curve_summary(run["curves"][method][scorer])
    rm = run["reward_models"]
    assert 0.0 <= rm["proxy"]["accuracy"] <= 1.0 and len(rm["ensemble"]["member_accuracy"]) == config.ensemble_size
    assert rm["ensemble"]["member_accuracy"][0] == rm["proxy"]["accuracy"]  # member 0 is the proxy
    assert 0.0 < rm["against_gold"] < 0.5 and rm["flipped"] == 0.0
    assert set(run["claims"]) == set(CLAIMS) and set(run["effects"]) == set(EFFECTS)
    assert all(isinstance(v, bool) for v in [*run["claims"].values(), *run["effects"].values()])


def test_sweep_counts_and_a_seed_alone(sweep):
    assert sweep["seeds"] == [3, 5] and set(sweep["runs"]) == {3, 5}
    for key, rules in (("claims", CLAIMS), ("effects", EFFECTS)):
        assert set(sweep[key]) == set(rules)
        for name, (held, total) in sweep[key].items():
            assert total == 2 and held == sum(sweep["runs"][s][key][name] for s in (3, 5))
    # a seed of the sweep is the same run as that seed alone (base models are shared, nothing else)
    alone = run_overoptimisation(OveroptimisationConfig.fast(**TINY, seed=5))
    for key in ("curves", "reward_models", "summary", "claims", "effects"):
        assert alone[key] == sweep["runs"][5][key], key
    assert alone["config"]["seed"] == 5 and "5" in overoptimisation_table(alone).split("\n")[0]
    table = overoptimisation_sweep_table(sweep)
    assert all(name in table for name in CLAIMS) and "/2" in table
    for fig in (overoptimisation_experiment_figure(alone), overoptimisation_sweep_figure(sweep)):
        assert len(fig.axes) in (3, 6)
        matplotlib.pyplot.close(fig)


def test_ensemble_members(task):
    """base_seeds: member m is a head on base model base_seed + m fitted to the proxy's own pairs (member 0 reads
    pi_0's features); bootstrap: heads on pi_0's features, each on its own resample."""
    config = OveroptimisationConfig.fast(ensemble_size=3, n_pairs=60)
    base = config.base_model(task)
    prefs = annotated_preferences(task, config)
    features = member_features(config, task, base)
    members = ensemble_members(config, prefs, features)
    proxy = fit_linear_head(features[0], prefs, config.rm)
    assert len(members) == 3 and torch.equal(members[0].w, proxy.w) and members[0].features is features[0]
    phi = [m.features(prefs.chosen) for m in members]
    assert all(not torch.allclose(phi[0], p) for p in phi[1:])  # other base models, other features
    assert not any(torch.allclose(members[0].w, m.w) for m in members[1:])
    boot_config = OveroptimisationConfig.fast(ensemble_size=3, n_pairs=60, ensemble_members="bootstrap")
    boot = ensemble_members(boot_config, prefs, features[:1])
    assert all(m.features is features[0] for m in boot)
    assert not torch.allclose(boot[0].w, boot[1].w) and not torch.allclose(boot[0].w, proxy.w)
    assert set(ENSEMBLE_MEMBERS) == {"base_seeds", "bootstrap"}
    with pytest.raises(ValueError, match="features"):
        ensemble_members(config, prefs, features[:2])


@pytest.mark.parametrize("field, value", [
    ("n_pairs", 0), ("noise", -0.1), ("noise", 0.5), ("seed", -1), ("ensemble_size", 1), ("ensemble_k", -1.0),
    ("bon_ns", (1, 2)), ("bon_ns", (0, 1, 2)), ("ppo_beta", 0.0), ("ppo_tokens", 0), ("eval_every", 0),
    ("n_eval", 1), ("size", "huge"), ("family", "rnn"), ("rm", "bt"), ("ppo_lr", float("nan")),
    ("ensemble_members", "laplace"), ("ensemble_members", None), ("spurious_word", "pizza"),
    ("spurious_word", 3), ("annotator_bonus", -1.0), ("annotator_bonus", float("inf")), ("annotator_bonus", True),
])
def test_bad_settings_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        OveroptimisationConfig(**{field: value})


def test_bad_calls_are_refused_by_name():
    with pytest.raises(ValueError, match="config"):
        run_overoptimisation({"seed": 0})
    with pytest.raises(ValueError, match="config"):
        run_overoptimisation_sweep({"seed": 0}, [0])
    for seeds in ([], [1, 1], [-1], "01", [0.5]):
        with pytest.raises(ValueError, match="seeds"):
            run_overoptimisation_sweep(OveroptimisationConfig.fast(), seeds)
    with pytest.raises(ValueError, match="seeds"):
        overoptimisation_claims([], fast=True)
    assert "food" in VOCABULARY and len(VOCABULARY) == 20
