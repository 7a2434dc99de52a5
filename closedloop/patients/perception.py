"""Perception model: how strongly a patient feels the stimulation, from the fibres it recruits.

Sensation grows with the recruited fraction of dorsal-column fibres, smoothed over a short
integration time and raised by the pulse rate. It is expressed in units of the patient's
perception threshold, so that

* ``sensation >= 1``: the paresthesia is perceived;
* ``sensation >= discomfort_level``: it is uncomfortable;
* in between lies the **therapeutic window**.

Per pulse ``i`` with recruited fraction ``f_i`` at rate ``r_i``::

    drive_i     = f_i * (r_i / reference_rate_hz) ** rate_exponent
    smooth_i    = smooth_{i-1} + (1 - exp(-dt_i / tau_s)) * (drive_i - smooth_{i-1})
    sensation_i = smooth_i / perception_fraction

The thresholds are recruited fractions, not currents or ECAP amplitudes. The ECAP a recording
contact sees per recruited fibre falls as the cord moves away, so the ECAP at discomfort differs
between postures (Pilitsis 2021: up to 3x [C]) although the felt discomfort does not.

How each patient's two fractions are set is in :func:`derive_perception`: the
perception threshold sits ``perception_db`` from the ECAP threshold in the reference posture
(Pilitsis 2021: median error 0.5 dB [C]), and discomfort lies ``discomfort_ratio`` times the
perception current above it.
"""

from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from closedloop._config import ConfigError, param, validate
from closedloop.neural.growth import growth_curve


@dataclasses.dataclass(frozen=True)
class PerceptionParams:
    """A patient's perception model (recruited fractions are of the modelled fibres)."""

    perception_fraction: float = param(
        0.003,
        "1",
        "derived per patient (perception.derive_"
        "perception); ECAP threshold ~ perception [C Pilitsis]",
        0.0,
        1.0,
        lo_open=True,
        doc="recruited fraction felt as paresthesia",
    )
    discomfort_fraction: float = param(
        0.08,
        "1",
        "derived per patient from discomfort_ratio",
        0.0,
        1.0,
        lo_open=True,
        doc="recruited fraction felt as uncomfortable",
    )
    rate_exponent: float = param(
        0.5,
        "1",
        "calibrated: sensation rises from 2 to 455 Hz while "
        "recruitment falls [C Gmel 2021, qualitative]",
        0.0,
        2.0,
        doc="sensation ∝ (rate / reference rate)^exponent",
    )
    reference_rate_hz: float = param(
        50.0,
        "Hz",
        "assumption: the programming rate",
        1.0,
        10_000.0,
        doc="rate at which the fractions were measured",
    )
    tau_s: float = param(
        0.1,
        "s",
        "assumption: perceptual integration ~100 ms",
        0.0,
        10.0,
        doc="integration time constant of the sensation",
    )
    perception_db: float = param(
        0.0,
        "dB",
        "Pilitsis 2021: median |error| 0.5 dB [C]",
        -6.0,
        6.0,
        doc="perception current re ECAP threshold, reference "
        "posture (provenance of perception_fraction)",
    )
    discomfort_ratio: float = param(
        1.6,
        "1",
        "assumption: discomfort/perception current 1.3-2.5 [M]",
        1.05,
        5.0,
        doc="discomfort current / perception current, reference posture (provenance)",
    )

    def __post_init__(self) -> None:
        validate(self, "perception.")
        if self.discomfort_fraction <= self.perception_fraction:
            raise ConfigError(
                f"perception.discomfort_fraction={self.discomfort_fraction!r} must exceed "
                f"perception_fraction={self.perception_fraction!r}"
            )

    @property
    def discomfort_level(self) -> float:
        """Sensation (perception-threshold units) at which discomfort begins."""
        return self.discomfort_fraction / self.perception_fraction

    def steady_sensation(self, frac_recruited, rate_hz: float = 50.0) -> np.ndarray:
        """Sensation of a steady train recruiting ``frac_recruited`` at ``rate_hz``."""
        factor = (rate_hz / self.reference_rate_hz) ** self.rate_exponent
        return np.asarray(frac_recruited, float) * factor / self.perception_fraction


@numba.njit(cache=True)
def smooth_step(level, drive, keep):  # pragma: no cover - compiled
    """One pulse of the sensation's first-order filter, the only copy of its dynamics.

    Args:
        level: Filtered drive before the pulse; NaN starts the filter at ``drive``.
        drive: This pulse's drive (recruited fraction times the rate factor).
        keep: ``exp(-dt / tau_s)`` for the interval before the pulse (0 if ``tau_s`` is 0).
    """
    return drive if level != level else drive + keep * (level - drive)


@numba.njit(cache=True)
def _filter_in_time(level, drive, keep, out):  # pragma: no cover - compiled
    """Run :func:`smooth_step` along one patient's pulses; returns the last level."""
    for i in range(drive.size):
        level = smooth_step(level, drive[i], keep[i])
        out[i] = level
    return level


@numba.njit(cache=True)
def smooth_many(level, drive, keep, out):  # pragma: no cover - compiled
    """Run :func:`smooth_step` for one pulse of many patients (arrays of one length)."""
    for i in range(level.size):
        out[i] = smooth_step(level[i], drive[i], keep[i])


def keep_factor(dt_s, tau_s: float):
    """``exp(-dt / tau)``, the filter's memory over an interval (0 when ``tau_s`` is 0).

    Args:
        dt_s: Interval(s) before the pulse(s) (s), scalar or array.
        tau_s: The filter's time constant (s).
    """
    if np.ndim(dt_s) == 0:
        return 0.0 if tau_s == 0.0 else math.exp(-dt_s / tau_s)
    return np.zeros(np.shape(dt_s)) if tau_s == 0.0 else np.exp(-np.asarray(dt_s) / tau_s)


def drive_factors(dt_s: float, rate_hz: float, params: PerceptionParams) -> tuple[float, float]:
    """The constants of :func:`sensation_update` for pulses ``dt_s`` apart at ``rate_hz``.

    A caller that steps one pulse at a time at a fixed rate computes them once, and then needs
    only ``level = smooth_step(level, frac_recruited * factor, keep)`` and
    ``sensation = level / params.perception_fraction`` per pulse, which is what
    :func:`sensation_update` does for one pulse, bit for bit.

    Returns:
        ``(factor, keep)``: the drive's rate factor ``(rate / reference_rate) ** rate_exponent``
        and the filter's memory ``exp(-dt / tau_s)`` (:func:`keep_factor`).
    """
    return (
        (rate_hz / params.reference_rate_hz) ** params.rate_exponent,
        keep_factor(dt_s, params.tau_s),
    )


def sensation_update(
    level: float, frac_recruited: np.ndarray, dt_s: float, rate_hz: float, params: PerceptionParams
) -> tuple[np.ndarray, float]:
    """Continue the smoothed sensation over new pulses (for step-by-step simulation).

    Args:
        level: Smoothed drive before these pulses (``sensation * perception_fraction``); NaN
            to start from the first pulse's drive, as :func:`sensation` does.
        frac_recruited: Recruited fraction of each new pulse.
        dt_s: Interval between pulses (s).
        rate_hz: Pulse rate (Hz).
        params: The perception model.

    Returns:
        Sensation of each new pulse (perception units) and the new ``level``.
    """
    factor, keep = drive_factors(dt_s, rate_hz, params)
    if len(frac_recruited) == 1:  # one pulse per step: scalar fast path
        y = smooth_step(level, float(frac_recruited[0]) * factor, keep)
        return np.array([y / params.perception_fraction]), y
    drive = np.asarray(frac_recruited, float) * factor
    out = np.empty_like(drive)
    y = _filter_in_time(level, drive, np.full(drive.size, keep), out)
    return out / params.perception_fraction, float(y)


def sensation(frac_recruited, t_s, rate_hz, params: PerceptionParams) -> np.ndarray:
    """Sensation per pulse in perception-threshold units.

    Args:
        frac_recruited: Recruited fraction of the modelled fibres per pulse, in [0, 1].
        t_s: Pulse times (s), non-decreasing, same length.
        rate_hz: Pulse rate (Hz), scalar or per pulse.
        params: The patient's perception model.

    Returns:
        Sensation per pulse (1 = perception threshold).
    """
    frac = np.ascontiguousarray(frac_recruited, dtype=float)
    t = np.ascontiguousarray(t_s, dtype=float)
    rate = np.broadcast_to(np.asarray(rate_hz, float), frac.shape)
    if frac.ndim != 1 or t.shape != frac.shape or frac.size == 0:
        raise ConfigError("frac_recruited and t_s must be non-empty 1-D arrays of one length")
    if not (np.all(np.isfinite(frac)) and np.all((frac >= 0) & (frac <= 1))):
        raise ConfigError("frac_recruited must lie in [0, 1]")
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) < 0):
        raise ConfigError("t_s must be finite and non-decreasing (s)")
    if not (np.all(np.isfinite(rate)) and np.all(rate > 0)):
        raise ConfigError("rate_hz must be finite and > 0 (Hz)")
    drive = frac * (rate / params.reference_rate_hz) ** params.rate_exponent
    out = np.empty_like(drive)
    keep = keep_factor(np.diff(t, prepend=t[0]), params.tau_s)
    _filter_in_time(np.nan, drive, keep, out)
    return out / params.perception_fraction


SWEEP_STEP_MA = 0.1
"""Current step (mA) of the programming sweep that locates the thresholds."""
SWEEP_PULSES = 16
"""Pulses per level of that sweep; the last half are averaged."""


def programming_sweep(model, csf_mm: float, pw_us: float = 250.0, rate_hz: float = 50.0):
    """The clinic's growth-curve sweep: 0-25.5 mA in ``SWEEP_STEP_MA`` steps.

    Returns:
        A :class:`~closedloop.neural.GrowthCurve`.
    """
    currents = np.arange(0.0, 25.5 + 1e-9, SWEEP_STEP_MA)
    return growth_curve(
        model, currents, pw_us=pw_us, rate_hz=rate_hz, csf_mm=csf_mm, pulses_per_level=SWEEP_PULSES
    )


def crossing_ma(currents_ma, values, level: float) -> float:
    """First current (mA) at which the rising envelope of ``values`` reaches ``level``.

    Linear interpolation between levels; NaN if it is never reached.
    """
    env = np.maximum.accumulate(np.asarray(values, float))
    k = int(np.argmax(env >= level))
    if env[k] < level:
        return float("nan")
    if k == 0:
        return float(currents_ma[0])
    i0, i1, v0, v1 = currents_ma[k - 1], currents_ma[k], env[k - 1], env[k]
    return float(i0 + (i1 - i0) * (level - v0) / (v1 - v0))


def derive_perception(
    model,
    csf_mm: float,
    perception_db: float = 0.0,
    discomfort_ratio: float = 1.6,
    pw_us: float = 250.0,
    rate_hz: float = 50.0,
    max_discomfort_ma: float = 25.5,
) -> PerceptionParams | None:
    """Place a patient's perception and discomfort thresholds on its recruitment curve.

    A growth-curve sweep in the reference posture gives the ECAP threshold ``I_th``. The
    perception current is ``I_p = I_th * 10**(perception_db / 20)`` and the discomfort current
    ``I_d = discomfort_ratio * I_p``; the recruited fractions at those currents become the
    patient's thresholds, valid in every posture.

    Args:
        model: The patient's :class:`~closedloop.neural.NeuralModel` (it is reset).
        csf_mm: CSF thickness of the reference posture (mm).
        perception_db: Perception threshold relative to the ECAP threshold (dB).
        discomfort_ratio: Discomfort current over perception current.
        pw_us: Pulse width (µs).
        rate_hz: Pulse rate (Hz); also the perception model's reference rate.
        max_discomfort_ma: Highest acceptable discomfort current (mA).

    Returns:
        The perception model, or None if the patient has no usable window (no measurable ECAP
        threshold, or discomfort above ``max_discomfort_ma``).
    """
    curve = programming_sweep(model, csf_mm, pw_us, rate_hz)
    currents = curve.currents_ma
    if not np.isfinite(curve.threshold_ma):
        return None
    i_p = curve.threshold_ma * 10.0 ** (perception_db / 20.0)
    i_d = discomfort_ratio * i_p
    if i_d > min(max_discomfort_ma, currents[-1]):
        return None
    envelope = np.maximum.accumulate(curve.frac_recruited)
    f_p, f_d = np.interp([i_p, i_d], currents, envelope)
    if not 0.0 < f_p < f_d:
        return None
    return PerceptionParams(
        perception_fraction=float(f_p),
        discomfort_fraction=float(f_d),
        reference_rate_hz=rate_hz,
        perception_db=float(perception_db),
        discomfort_ratio=float(discomfort_ratio),
    )
