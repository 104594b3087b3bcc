"""minirl.scaling_laws: Gao et al.'s forms fitted by least squares recover known coefficients, and the fitted
peak is where the curve turns (docs/equations.md §8)."""

import math

import numpy as np
import pytest

from minirl.scaling_laws import GaoFit, fit_gao, fitted_peak


@pytest.mark.parametrize("form", ["bon", "rl"])
def test_fit_gao_recovers_known_coefficients(form):
    g = np.random.default_rng(0)
    kl = np.linspace(0.05, 12, 40)
    d = np.sqrt(kl)
    clean = d * (1.3 - 0.4 * d) if form == "bon" else d * (1.3 - 0.4 * np.log(d))
    fit = fit_gao(kl, clean, form)
    assert (fit.alpha, fit.beta, fit.r2) == pytest.approx((1.3, 0.4, 1.0), abs=1e-10)
    noisy = fit_gao(kl, clean + 0.02 * g.standard_normal(len(kl)), form)
    assert (noisy.alpha, noisy.beta) == pytest.approx((1.3, 0.4), abs=0.03) and noisy.r2 > 0.95
    np.testing.assert_allclose(fit.predict(kl), clean, atol=1e-10)


@pytest.mark.parametrize("fit", [GaoFit(1.0, 0.25, 1.0, "bon"), GaoFit(1.0, 0.5, 1.0, "rl"), GaoFit(2.0, 0.3, 1.0, "bon"),
                                 GaoFit(0.7, 0.4, 1.0, "rl")])
def test_fitted_peak_is_the_argmax_of_the_fitted_curve(fit):
    peak = fitted_peak(fit)
    grid = np.linspace(1e-6, 3 * peak, 300_001)  # d
    assert grid[np.argmax(fit.predict(grid ** 2))] == pytest.approx(peak, abs=1e-4)


def test_fitted_peak_closed_forms_and_no_turn():
    assert fitted_peak(GaoFit(1.0, 0.25, 1.0, "bon")) == pytest.approx(2.0)  # d (a - b d): peak a / 2b
    assert fitted_peak(GaoFit(1.0, 0.5, 1.0, "rl")) == pytest.approx(math.e)  # d (a - b log d): exp(a/b - 1)
    assert fitted_peak(GaoFit(1.0, -0.1, 1.0, "rl")) == math.inf
    assert fitted_peak(GaoFit(1.0, 0.0, 1.0, "bon")) == math.inf


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="form: must be one of"):
        fit_gao([0, 1, 2], [0, 1, 2], "linear")
    with pytest.raises(ValueError, match="kl, reward: need two vectors"):
        fit_gao([0, 1], [0, 1])
    with pytest.raises(ValueError, match="kl: every value must be finite and >= 0"):
        fit_gao([0, -1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="reward: every value must be finite"):
        fit_gao([0, 1, 2], [0, float("nan"), 2])
