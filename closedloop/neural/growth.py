"""Growth curves: ECAP amplitude against current, and the soft-knee fit of threshold and slope.

The protocol mirrors a clinical sweep: the current steps up through ``currents_ma``; at each
level ``pulses_per_level`` pulses are delivered at ``rate_hz`` (the fibre state carries over
from level to level, as in a real ramp) and the ECAP is averaged over the last half of them.

The fit is ``a(I) = slope * k * log(1 + exp((I - threshold) / k))``: zero well below
threshold, linear with ``slope`` well above it, with a knee of width ``k`` (mA). Only levels up to
``FIT_SPAN`` times the first clearly detected one enter the fit, so that saturation at full
recruitment does not bend the slope and the result does not depend on the sweep's extent.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np
from scipy.optimize import curve_fit

from closedloop._config import ConfigError
from closedloop.neural.model import NeuralModel
from closedloop.neural.validation import (
    CSF_RANGE_MM,
    CURRENT_RANGE_MA,
    PW_RANGE_US,
    check_array,
    check_rate,
    check_scalar,
)

MIN_LEVELS = 4
"""Fewest current levels of a sweep (the soft-knee fit has three parameters)."""
DETECT_UV = 10.0
"""ECAP (µV) taken as clearly above the noise when locating the threshold region."""
FIT_SPAN = 2.2
"""The fit covers currents up to this multiple of the first clearly detected level."""
MIN_THRESHOLD_FRACTION = 0.3
"""A fitted threshold below this fraction of the first clearly detected level is refused: an
ECAP that clears the noise at I mA does not start at under 0.3 I (growth from zero current is
the stimulus artefact leaking into the estimate, as in the prone posture)."""


@dataclasses.dataclass(frozen=True)
class GrowthCurve:
    """A measured growth curve and its fit (currents in mA, amplitudes in µV)."""

    currents_ma: np.ndarray
    ecap_uv: np.ndarray
    """Mean estimated ECAP per level (the configured estimator)."""
    ecap_sd_uv: np.ndarray
    """Pulse-to-pulse sd of the estimate per level."""
    ecap_true_uv: np.ndarray
    """Mean noise-free N1-P2 per level."""
    n1_latency_ms: np.ndarray
    """Mean N1 latency per level (NaN where no fibre fired)."""
    frac_recruited: np.ndarray
    threshold_ma: float
    slope_uv_per_ma: float
    knee_ma: float
    pw_us: float
    rate_hz: float
    csf_mm: float
    waveforms_uv: np.ndarray | None = None
    """One recorded sweep per level (levels x samples) if requested."""

    def to_dict(self) -> dict:
        """JSON-ready dict (arrays as lists, NaN as None)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = [None if not np.isfinite(x) else float(x) for x in v.ravel()]
            out[f.name] = v
        if self.waveforms_uv is None:
            out.pop("waveforms_uv")
        return out


def soft_knee(i_ma, threshold_ma, slope_uv_per_ma, knee_ma):
    """The soft-knee growth model (µV)."""
    z = (np.asarray(i_ma) - threshold_ma) / knee_ma
    return slope_uv_per_ma * knee_ma * np.logaddexp(0.0, z)


def fit_growth(
    currents_ma: np.ndarray, ecap_uv: np.ndarray, detect_uv: float = DETECT_UV
) -> tuple[float, float, float]:
    """Fit threshold (mA), slope (µV/mA) and knee width (mA) to a growth curve.

    The fit uses the levels up to ``FIT_SPAN`` times the first current whose ECAP exceeds
    ``detect_uv``, the clinically used range from threshold to about discomfort, so that the
    result does not depend on how far past saturation a sweep goes.

    Returns:
        ``(threshold_ma, slope_uv_per_ma, knee_ma)``; all NaN if no level exceeds
        ``detect_uv``, the fitted threshold lies beyond the sweep (no measurable growth) or
        below ``MIN_THRESHOLD_FRACTION`` of the first detected level (artefact leakage).

    Raises:
        ConfigError: If fewer than 4 levels are given.
    """
    i, a = np.asarray(currents_ma, float), np.asarray(ecap_uv, float)
    if i.size < 4:
        raise ConfigError(f"a growth curve needs at least 4 current levels, got {i.size}")
    if not np.any(a > detect_uv):
        return float("nan"), float("nan"), float("nan")
    i_detect = i[np.argmax(a > detect_uv)]
    use = i <= max(FIT_SPAN * i_detect, i[min(3, i.size - 1)])
    i, a = i[use], a[use]
    top = a.max()
    p0 = (0.9 * i_detect, top / max(i[-1] - 0.9 * i_detect, 1e-3), 0.5)
    lo, hi = (0.0, 0.0, 1e-3), (2 * CURRENT_RANGE_MA[1], 1e4, CURRENT_RANGE_MA[1])
    p0 = tuple(float(np.clip(p, lo_, 0.999 * hi_)) for p, lo_, hi_ in zip(p0, lo, hi, strict=True))
    (th, sl, kn), _ = curve_fit(soft_knee, i, a, p0=p0, bounds=(lo, hi), maxfev=20000)
    if th > i[-1]:  # the knee lies beyond the sweep: no threshold can be claimed
        return float("nan"), float("nan"), float("nan")
    if th < MIN_THRESHOLD_FRACTION * i_detect:
        # growth that starts near zero current is stimulus-artefact leakage (linear in
        # current), not a neural response with a threshold
        return float("nan"), float("nan"), float("nan")
    return float(th), float(sl), float(kn)


def check_levels(currents_ma) -> np.ndarray:
    """The sweep's current levels (mA) as a float64 array; default 0-15 mA in 0.5 mA steps.

    Raises:
        ConfigError: Unless ``currents_ma`` is a 1-D array of at least :data:`MIN_LEVELS` real
            numbers in [0, 25.5] mA, strictly ascending.
    """
    if currents_ma is None:
        return np.arange(0.0, 15.01, 0.5)
    cur = check_array("currents_ma", currents_ma, *CURRENT_RANGE_MA, "mA")
    if cur.ndim != 1 or cur.size < MIN_LEVELS or np.any(np.diff(cur) <= 0.0):
        raise ConfigError(
            f"currents_ma must be at least {MIN_LEVELS} strictly ascending levels "
            f"in [0, 25.5] mA; got {cur.size} level(s) of shape {cur.shape}"
            f"{'' if np.all(np.diff(cur.ravel()) > 0) else ', not ascending'}"
        )
    return cur


def growth_curve(
    model: NeuralModel,
    currents_ma=None,
    *,
    pw_us: float = 250.0,
    rate_hz: float = 50.0,
    csf_mm: float | None = None,
    pulses_per_level: int = 50,
    waveforms: bool = False,
) -> GrowthCurve:
    """Sweep the current upwards and fit the growth curve.

    Args:
        model: The patient's model; it is reset before the sweep.
        currents_ma: At least 4 strictly ascending current levels (mA) in [0, 25.5]; default
            0-15 mA in 0.5 mA steps.
        pw_us: Pulse width (µs), a number in [20, 1000].
        rate_hz: Pulse rate (Hz), a number in [1, 10000].
        csf_mm: CSF thickness (mm) inside the tabulated grid; the model default if None.
        pulses_per_level: Pulses at each level (>= 2); the last half are averaged. They are
            delivered in chunks, so Ctrl-C stops a long sweep.
        waveforms: Keep the last recorded sweep of each level.

    Returns:
        The :class:`GrowthCurve`.

    Raises:
        ConfigError: If an argument is out of range, or one level's records would not fit in
            the available memory.
    """
    cur = check_levels(currents_ma)
    pw_us = check_scalar("pw_us", pw_us, *PW_RANGE_US, "µs")
    rate_hz = check_rate(rate_hz)
    csf = check_scalar(
        "csf_mm", model.default_csf_mm if csf_mm is None else csf_mm, *CSF_RANGE_MM, "mm"
    )
    if (
        isinstance(pulses_per_level, bool)
        or not isinstance(pulses_per_level, numbers.Integral)
        or pulses_per_level < 2
    ):
        raise ConfigError(
            f"pulses_per_level={pulses_per_level!r} must be an integer "
            "in [2, inf), as many as fit in memory"
        )
    model.check_memory(int(pulses_per_level), waveforms, "pulses_per_level")
    model.reset()
    rows, sweeps = [], []
    for level in cur:
        got = model.pulse_train(level, rate_hz, pulses_per_level, pw_us, csf, waveforms=waveforms)
        rec, wave = got if waveforms else (got, None)
        tail = rec[pulses_per_level // 2 :]
        lat = tail["n1_latency_ms"]
        rows.append(
            (
                tail["ecap_uv"].mean(),
                tail["ecap_uv"].std(),
                tail["ecap_true_uv"].mean(),
                np.nanmean(lat) if np.isfinite(lat).any() else np.nan,
                tail["frac_recruited"].mean(),
            )
        )
        if waveforms:
            sweeps.append(wave[-1])
    ecap, sd, true, lat, frac = (np.array(c) for c in zip(*rows, strict=True))
    th, sl, kn = fit_growth(cur, ecap)
    return GrowthCurve(
        cur,
        ecap,
        sd,
        true,
        lat,
        frac,
        th,
        sl,
        kn,
        pw_us,
        rate_hz,
        csf,
        np.array(sweeps) if waveforms else None,
    )
