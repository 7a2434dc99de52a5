"""Validation of the neural response model against the published figures in shared/domain.md.

Tolerances are stated next to each assertion; the sources are the ones in docs/model_card.md.
"""

import numpy as np
import pytest

from closedloop.neural import ModelParams, NeuralModel, growth_curve
from closedloop.patients.cohort import get_patient

CURRENTS = np.arange(0.0, 16.01, 0.5)


@pytest.fixture(scope="module")
def patient():
    return get_patient("default")


@pytest.fixture(scope="module")
def model(patient):
    return patient.model()


@pytest.fixture(scope="module", params=[200.0, 300.0])
def curve(request, model):
    return growth_curve(model, CURRENTS, pw_us=request.param, rate_hz=50.0)


def test_growth_curve_threshold_and_slope_in_published_range(curve):
    # Pilitsis 2021: example 4 mA / 15 uV/mA; realistic spread 2-8 mA, 5-50 uV/mA.
    assert 2.0 <= curve.threshold_ma <= 8.0
    assert 5.0 <= curve.slope_uv_per_ma <= 50.0


def test_no_ecap_below_threshold(curve):
    below = curve.currents_ma < 0.7 * curve.threshold_ma
    assert below.sum() >= 3
    # at most a stray fibre fires: the true ECAP stays under 1 uV, far below the noise
    assert np.all(curve.ecap_true_uv[below] < 1.0)
    assert np.all(curve.ecap_true_uv[curve.currents_ma < 0.4 * curve.threshold_ma] == 0.0)
    if curve.pw_us <= 250.0:
        # the estimate is noise only: within 4 uV (about 1.3 x the 3 uV rms amplifier noise)
        assert np.all(np.abs(curve.ecap_uv[below]) < 4.0)
    else:
        # longer pulses: N1 (MRG initiation during the pulse) arrives ~0.1 ms after the window
        # opens, where the artefact tail is large; the artefact-orthogonal filter reads none of
        # it (est-fix: was < 2.5 uV/mA), so the estimate is the noise floor (the filter's noise
        # sd is ~4 uV here, the largest of 15 lags ~1.4 sd) and does not grow with current
        leak = curve.ecap_uv[below]
        assert np.all(np.abs(leak) < 8.0)
        assert leak.max() - leak.min() < 2.0


def test_linear_above_threshold_with_soft_knee(curve):
    th, top = curve.threshold_ma, 0.5 * curve.ecap_uv.max()
    lin = (curve.currents_ma > 1.3 * th) & (curve.ecap_uv < top)
    assert lin.sum() >= 4
    x, y = curve.currents_ma[lin], curve.ecap_uv[lin]
    fit = np.polyfit(x, y, 1)
    r2 = 1 - np.sum((y - np.polyval(fit, x)) ** 2) / np.sum((y - y.mean()) ** 2)
    # linear above the knee (at 300 us the early N1 meets the window's start: R^2 > 0.95)
    assert r2 > (0.98 if curve.pw_us <= 250.0 else 0.95)
    # soft knee: near threshold the ECAP lies above the straight-line extrapolation's zero
    near = np.argmin(np.abs(curve.currents_ma - th))
    assert curve.ecap_true_uv[near] > 0.0
    assert 0.0 < curve.knee_ma < 0.5 * th


def test_n1_latency_and_conduction_velocity(patient):
    # N1 latency 0.8-2.5 ms at the default recording distance (domain: ECAP window 1-2.5 ms,
    # here measured from pulse onset); implied conduction velocity 45-80 m/s.
    lat = {}
    for contact in (5, 7):
        params = patient.params.replace(lead={"recording_contact": contact})
        m = NeuralModel(params, seed=patient.seed)
        rec = m.pulse_train(7.0, 50.0, 60, csf_mm=patient.csf_supine_mm)
        lat[contact] = np.nanmean(rec["n1_latency_ms"][20:])
    assert 0.8 <= lat[7] <= 2.5
    dist_mm = 2 * patient.params.lead.pitch_mm
    cv = dist_mm / (lat[7] - lat[5])  # mm/ms == m/s
    assert 45.0 <= cv <= 80.0


def test_threshold_rises_with_csf_thickness(model):
    wide = np.arange(0.0, 25.01, 0.5)
    th = [growth_curve(model, wide, csf_mm=c).threshold_ma for c in (3.0, 3.5, 4.0)]
    assert th[0] < th[1] < th[2]


def test_threshold_lowest_supine_then_sitting_standing(patient, model):
    th = {
        p: growth_curve(model, CURRENTS, csf_mm=patient.csf_mm(p)).threshold_ma
        for p in ("supine", "sitting", "standing")
    }
    assert th["supine"] < th["sitting"] < th["standing"]
    # Cameron & Alo 1998: about 0.49 +- 0.30 uC more charge across lying/sitting/standing
    extra_uc = (th["standing"] - th["supine"]) * 250e-3
    assert 0.19 <= extra_uc <= 0.79


def test_ecap_falls_log_linearly_with_frequency(model):
    # Gmel 2021: at fixed current the ECAP falls with rate, roughly linearly in log(f).
    rates = np.array([2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 455.0])
    amp = []
    for f in rates:
        model.reset()
        n = int(max(12 * f, 30))  # 12 s of stimulation, past the slowest adaptation
        amp.append(model.pulse_train(7.0, f, n)["ecap_true_uv"][-n // 5 :].mean())
    amp = np.array(amp)
    assert np.all(np.diff(amp) < 0)
    x = np.log(rates)
    fit = np.polyfit(x, amp, 1)
    r2 = 1 - np.sum((amp - np.polyval(fit, x)) ** 2) / np.sum((amp - amp.mean()) ** 2)
    assert r2 > 0.95
    assert 0.2 < amp[-1] / amp[0] < 0.8


def test_high_rates_work_and_desynchronise(model):
    model.reset()
    rec = model.pulse_train(7.0, 10_000.0, 20_000)
    assert np.all(np.isfinite(rec["ecap_uv"]))
    # absolute refractoriness: a fibre fires at most once per 0.7 ms, i.e. every 7th pulse
    assert rec["frac_recruited"][100:].max() <= 1.0 / 7.0 + 1e-9
    assert rec["ecap_true_uv"][-2000:].mean() < 0.2 * rec["ecap_true_uv"][0]


def test_strength_duration(model):
    wide = np.arange(0.0, 25.01, 0.5)
    short = growth_curve(model, wide, pw_us=100.0)
    long_ = growth_curve(model, wide, pw_us=300.0)
    assert long_.threshold_ma < short.threshold_ma  # strength-duration
    # Weiss law, chronaxie 150-400 us: I(100)/I(300) = (1 + c/100)/(1 + c/300) in 1.6-2.3
    assert 1.5 < short.threshold_ma / long_.threshold_ma < 2.4
    # longer pulse: later ECAP (at similar ECAP size, ~40 uV): at least the 0.2 ms of extra
    # cathodic phase, minus 0.05 ms for the faster mix a longer pulse may recruit
    i_s = np.argmin(np.abs(short.ecap_true_uv - 40.0))
    i_l = np.argmin(np.abs(long_.ecap_true_uv - 40.0))
    assert long_.n1_latency_ms[i_l] > short.n1_latency_ms[i_s] + 0.15


def test_muscle_response_only_at_high_current(model):
    model.reset()
    low = model.pulse_train(6.0, 50.0, 20)
    high = model.pulse_train(25.0, 50.0, 20)
    assert np.all(low["emg_uv"] == 0.0)
    assert high["emg_uv"].max() > 50.0


def test_detection_flag(model):
    model.reset()
    sub = model.pulse_train(1.0, 50.0, 200)
    supra = model.pulse_train(9.0, 50.0, 200)
    assert sub["detected"].mean() < 0.05
    assert supra["detected"][50:].mean() > 0.95


def test_outputs_ground_truth_and_units(model):
    model.reset()
    rec, wave = model.pulse_train(8.0, 50.0, 10, pw_us=300.0, waveforms=True)
    assert np.allclose(rec["charge_uc"], 8.0 * 300e-3)
    assert np.all(rec["n_recruited"] == np.round(rec["frac_recruited"] * model.n_fibres))
    assert wave.shape == (10, model.n_samples)
    t = model.sample_times_ms
    assert t[-1] >= 5.0 and 1e3 / (t[1] - t[0]) >= 20_000  # >= 0-5 ms at >= 20 kHz


def test_ecap_independent_of_modelled_fibre_count():
    # The SFAP weight is scaled by 2048 / N: the population size changes resolution, not size.
    # The ECAP threshold is set by the few largest shallow fibres, so it converges from above
    # (model card: 1024 / 2048 / 4096 / 8192 fibres give 4.48 / 4.10 / 3.89 / 3.83 mA). Averaged
    # over 3 patients (seeds), the default 2048 and 8192 fibres agree within 15 % on the slope
    # and 10 % on the threshold.
    fits = []
    for n in (2048, 8192):
        params = ModelParams().replace(population={"n_fibres": n})
        curves = [growth_curve(NeuralModel(params, seed=s), CURRENTS) for s in range(3)]
        fits.append(np.mean([(c.threshold_ma, c.slope_uv_per_ma) for c in curves], axis=0))
    assert abs(fits[0][0] / fits[1][0] - 1) < 0.10
    assert abs(fits[0][1] / fits[1][1] - 1) < 0.15
