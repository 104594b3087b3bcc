"""The compounding-error experiment: exponents near 2 (BC) and 1 (DAgger), exact = Monte-Carlo."""

import json

import numpy as np
import pytest

from minirl.cli import main
from minirl.experiments.compounding_error import (CompoundingErrorConfig, fit_exponent,
                                                  run_compounding_error)

SMALL = dict(horizons=(5, 10, 20, 40, 80), n_seeds=2, n_eval=1000, dagger_iterations=6, dagger_episodes=100)


@pytest.fixture(scope="module")
def result():
    return run_compounding_error(CompoundingErrorConfig(**SMALL))


def test_fit_exponent_recovers_a_power_law():
    T = np.array([5, 10, 20, 40])
    assert fit_exponent(T, 0.3 * T**1.7) == pytest.approx(1.7)


def test_exponents_match_the_theorems(result):
    s = result.summary()
    assert abs(s["bc_exponent"] - 2) < 0.3, s
    assert abs(s["dagger_exponent"] - 1) < 0.3, s
    assert abs(s["bc_exponent_exact"] - 2) < 0.3 and abs(s["dagger_exponent_exact"] - 1) < 0.05


def test_both_learners_have_the_same_controlled_error(result):
    for m in ("bc", "dagger"):
        assert np.allclose(result.epsilon_measured[m], 0.01, atol=5e-4)


def test_monte_carlo_agrees_with_the_exact_mistakes(result):
    for m in ("bc", "dagger"):
        mc, se, exact = result.mistakes[m], result.mistakes_se[m], result.exact[m]
        z = np.abs(mc - exact) / np.maximum(se, 1e-9)
        assert z.max() < 5, (m, z)


def test_same_seed_same_numbers():
    config = CompoundingErrorConfig(horizons=(5, 20), n_seeds=1, n_eval=200, dagger_iterations=2, dagger_episodes=20)
    a, b = run_compounding_error(config).summary(), run_compounding_error(config).summary()
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


@pytest.mark.parametrize("kwargs, field", [
    (dict(epsilon=0.0), "epsilon"),
    (dict(horizons=()), "horizons"),
    (dict(horizons=(200, 300)), "horizons"),
    (dict(n_seeds=0), "n_seeds"),
    (dict(n_eval=0), "n_eval"),
])
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CompoundingErrorConfig(**kwargs)


def test_cli_json(tmp_path, capsys):
    assert main(["demo", "compounding-error", "--json", "--seeds", "1", "--out", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("horizons", "bc", "dagger", "bc_exponent", "dagger_exponent", "epsilon"):
        assert key in out
    assert len(out["bc"]) == len(out["horizons"]) == len(out["dagger"])
    assert abs(out["bc_exponent"] - 2) < 0.3 and abs(out["dagger_exponent"] - 1) < 0.3
    assert (tmp_path / "compounding_error.png").stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["compounding_error.png"]  # no temp files left


def test_table_reports_the_measurements(result):
    text = result.table()
    assert "fitted exponent" in text and f"{result.summary()['bc_exponent']:.3f}" in text
    assert len(text.splitlines()) == 2 + len(result.horizons) + 2
