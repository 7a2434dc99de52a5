"""The growth-curve fit: a soft knee is recovered; artefact leakage is not called an ECAP."""

import numpy as np
import pytest

from closedloop.neural.growth import fit_growth, soft_knee

CURRENTS = np.arange(0.0, 25.51, 0.5)


def test_soft_knee_parameters_are_recovered():
    a = soft_knee(CURRENTS, 4.0, 15.0, 0.5)
    th, sl, kn = fit_growth(CURRENTS, a)
    assert th == pytest.approx(4.0, rel=1e-3)
    assert sl == pytest.approx(15.0, rel=1e-3)
    assert kn == pytest.approx(0.5, rel=1e-2)


def test_growth_linear_from_zero_current_is_not_an_ecap():
    # Stimulus-artefact leakage into the estimate grows linearly from zero current (prone
    # posture: the ECAP lies below it); the fit must not report a threshold near 0 mA.
    rng = np.random.default_rng(0)
    leak = 1.5 + 0.6 * CURRENTS + rng.normal(0.0, 0.3, CURRENTS.size)
    assert np.isnan(fit_growth(CURRENTS, leak)).all()


def test_a_late_ecap_on_top_of_leakage_is_still_found():
    a = 0.2 * CURRENTS + soft_knee(CURRENTS, 12.0, 8.0, 0.8)
    th, sl, _ = fit_growth(CURRENTS, a)
    assert 10.0 < th < 13.0 and sl > 5.0
