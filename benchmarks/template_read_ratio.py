"""Read ratio of the template estimator from ECAP threshold to discomfort, per pulse width.

For each validation patient (reference posture, pool mode unless ``--all-or-none``, noise off,
artefact and ADC on, the shipped defaults otherwise) and pulse width, the recruited fraction of
the first pulse from rest is swept over 0-25.5 mA; ``N_LEVELS`` currents are placed at recruited
fractions spaced geometrically from the fraction at the patient's 250 µs ECAP threshold (soft-
knee fit of the noise-free N1-P2) to its discomfort fraction. At each, ``N_PULSES`` pulses at 50
Hz from rest; the read ratio is the mean template estimate over the second half over the mean
noise-free N1-P2 (``ecap_true_uv``); levels whose N1-P2 is under ``MIN_TRUE_UV`` are left out.

Besides the kernel's estimate (the configured template and lag rule), the steady last sweep is
read offline (largest projection over lags) by candidate filters:

* ``own-k``: the patient's own steady noise-free ECAP at level ``k`` (what a device averaging
  at a programming current in that range learns), orthogonal to a constant and to the
  artefact at lags 0 and -lag (as the kernel does);
* ``own-k full``: the same, orthogonal to the artefact at every lag 0..-lag (which is: zero on
  the window's first ``lag`` samples, orthogonal to a constant and the artefact after them),
  so that the artefact adds nothing at any lag.

Usage (from the repository root)::

    python benchmarks/template_read_ratio.py [--shape recruited|class-mix] [--lag-s 0.5]
        [--all-or-none]
"""

from __future__ import annotations

import argparse

import numpy as np

from closedloop.neural import NeuralModel
from closedloop.neural.growth import fit_growth
from closedloop.patients.cohort import load_cohort

PWS_US = (150.0, 250.0, 300.0, 500.0)
SWEEP_MA = np.arange(0.0, 25.51, 0.25)
N_LEVELS = 8
N_PULSES = 60
MIN_TRUE_UV = 2.0
OWN_LEVELS = (3, 5)


def _window(model: NeuralModel, pw_us: float) -> tuple[int, int]:
    """The estimator window ``lo:hi`` (samples), as ``recording.window_bounds``."""
    rp, n = model.params.recording, model.n_samples
    lo = int(np.ceil(((2 * pw_us + rp.interphase_us) * 1e-3 + rp.blank_ms) * rp.fs_hz * 1e-3))
    hi = int(np.floor(rp.est_end_ms * rp.fs_hz * 1e-3)) + 1
    return min(lo, n - 2), max(min(hi, n), min(lo, n - 2) + 2)


def _filter(
    model: NeuralModel, e: np.ndarray, pw_us: float, full: bool
) -> tuple[np.ndarray, float]:
    """Filter of reference ECAP ``e`` and its scale (estimate = projection x scale)."""
    rp = model.params.recording
    lo, hi = _window(model, pw_us)
    lag = min(model.kparams.template_lag, hi - lo - 1)
    t = np.arange(model.n_samples) * 1e3 / rp.fs_hz
    t_end = (2 * pw_us + rp.interphase_us) * 1e-3
    art = np.exp(-(t - t_end) / rp.artefact_tau_ms)[lo:hi]
    x = e[lo:hi]
    amp = x[int(np.argmin(x)) :].max() - x.min()
    basis = [np.ones(hi - lo)]
    for k in range(lag + 1) if full else (0, lag):
        v = np.zeros(hi - lo)
        v[k:] = art[: hi - lo - k]
        basis.append(v)
    q, _ = np.linalg.qr(np.array(basis).T)
    w = x - q @ (q.T @ x)
    return w, amp / float(w @ w)


def _read(
    model: NeuralModel, filt: tuple[np.ndarray, float], sweep: np.ndarray, pw_us: float
) -> float:
    """Largest projection over lags -lag..lag of ``sweep`` on the filter, scaled (µV)."""
    lo, hi = _window(model, pw_us)
    w, scale = filt
    lag = min(model.kparams.template_lag, hi - lo - 1)
    x = sweep[lo:hi]
    best = -np.inf
    for k in range(-lag, lag + 1):
        s = np.arange(max(0, -k), min(hi - lo, hi - lo - k))
        best = max(best, float(x[s + k] @ w[s]))
    return best * scale


def patient_levels(patient, shape: str, lag_s: float, pool: bool) -> dict:
    """Per pulse width: the levels' currents, true N1-P2, kernel estimate and steady sweeps."""
    rec = {"noise_uv_rms": 0.0, "template_shape": shape, "lag_tracking_s": lag_s}
    params = patient.params.replace(recording=rec, excitability={"pool_fraction": pool})
    model = NeuralModel(params, seed=patient.seed)
    csf = patient.csf_mm("sitting")
    first = {}
    for pw in PWS_US:
        rows = []
        for c in SWEEP_MA:
            model.reset(0)
            rows.append(model.pulse_train(c, 50.0, 1, pw_us=pw, csf_mm=csf)[0])
        first[pw] = (
            np.array([r["ecap_true_uv"] for r in rows]),
            np.array([r["frac_recruited"] for r in rows]),
        )
    th_ma = fit_growth(SWEEP_MA, first[250.0][0])[0]
    f_th = float(np.interp(th_ma, SWEEP_MA, first[250.0][1]))
    f_levels = np.geomspace(f_th, max(patient.perception.discomfort_fraction, 1.2 * f_th), N_LEVELS)
    out = {}
    for pw in PWS_US:
        frac = np.maximum.accumulate(first[pw][1]) + np.arange(SWEEP_MA.size) * 1e-12
        levels = []
        for c in np.interp(f_levels, frac, SWEEP_MA):
            model.reset(0)
            r, waves = model.pulse_train(c, 50.0, N_PULSES, pw_us=pw, csf_mm=csf, waveforms=True)
            half = slice(N_PULSES // 2, None)
            levels.append(
                {
                    "current_ma": c,
                    "true": r["ecap_true_uv"][half].mean(),
                    "kernel": r["ecap_template_uv"][half].mean(),
                    "sweep": waves[-1].copy(),
                    "neural": model.work.sweeps[0].copy(),
                }
            )
        out[pw] = levels
    return {"model": model, "levels": out}


def _summary(name: str, ratios: dict) -> str:
    parts = [name.ljust(16)]
    for pw in PWS_US:
        r = np.array(ratios[pw])
        parts.append(
            f"{pw:3.0f}: {np.median(r):.2f} [{r.min():.2f}, {r.max():.2f}] "
            f"±5% {100 * np.mean(abs(r - 1) < 0.05):3.0f}% "
            f"±10% {100 * np.mean(abs(r - 1) < 0.1):3.0f}%"
        )
    return " | ".join(parts)


def main() -> None:
    """Print the read-ratio summaries (median [min, max], shares within 5 and 10 %)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=("class-mix", "recruited"), default="recruited")
    ap.add_argument("--lag-s", type=float, default=0.5, help="lag_tracking_s (s; 0: largest)")
    ap.add_argument("--all-or-none", action="store_true", help="pool mode off")
    args = ap.parse_args()
    names = ["kernel"] + [f"own-{k}{s}" for k in OWN_LEVELS for s in ("", " full")]
    ratios = {n: {pw: [] for pw in PWS_US} for n in names}
    for patient in load_cohort("validation"):
        got = patient_levels(patient, args.shape, args.lag_s, not args.all_or_none)
        model = got["model"]
        for pw, levels in got["levels"].items():
            filters = {
                f"own-{k}{s}": _filter(model, levels[k]["neural"], pw, s == " full")
                for k in OWN_LEVELS
                for s in ("", " full")
            }
            for lv in levels:
                if lv["true"] < MIN_TRUE_UV:
                    continue
                ratios["kernel"][pw].append(lv["kernel"] / lv["true"])
                for n, f in filters.items():
                    ratios[n][pw].append(_read(model, f, lv["sweep"], pw) / lv["true"])
    for n in names:
        print(_summary(n, ratios[n]))


if __name__ == "__main__":
    main()
