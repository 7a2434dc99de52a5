"""The fast model's paired-pulse recovery cycle, measured on the numba kernel (MRG's protocol)."""

from __future__ import annotations

import math

import numpy as np

from closedloop._config import ConfigError
from closedloop.neural.model import NeuralModel
from closedloop.neural.params import ModelParams

RECOVERY_INTERVALS_MS = tuple(
    float(x)
    for x in np.round(
        np.r_[
            np.arange(0.4, 2.0, 0.1),
            np.arange(2.0, 4.0, 0.2),
            np.arange(4.0, 10.0, 0.5),
            np.arange(10.0, 30.0, 2.0),
            np.arange(30.0, 101.0, 10.0),
        ],
        6,
    )
)
"""Conditioning-test intervals (ms) used when the reference gives none."""


RECOVERY_CSF_MM = 2.0
"""CSF thickness (mm) of the recovery protocol: resting thresholds near 1.3 mA, so the test
current can reach 18x threshold before the device limit (25.5 mA)."""


MAX_CURRENT_MA = 25.5
"""Largest test current (mA); no second AP at this current counts as absolute refractory."""


BISECT_STEPS = 24
"""Bisection steps in log current (final bracket about 1e-6 relative)."""


def _recovery_model(params: ModelParams | None):
    """A small jitter-free patient of near-identical shallow 10 µm fibres."""
    base = params or ModelParams()
    small = base.replace(
        population={
            "n_fibres": 16,
            "depth_max_mm": 0.1,
            "half_width_mm": 0.5,
            "diameter_min_um": 10.0,
            "diameter_max_um": 10.2,
        },
        excitability={"jitter_rel": 0.0},
    )
    return NeuralModel(small, seed=0)


class _PairedPulse:
    """The recovery protocol on a small jitter-free patient (see :func:`recovery`)."""

    def __init__(self, params: ModelParams | None, pw_us: float, max_test_ratio: float):
        self.model = _recovery_model(params)
        self.pw_us = pw_us
        self.rest_ma = self.threshold_ma(None, MAX_CURRENT_MA)
        all_fire = self.rest_ma
        while self._recruited(all_fire, None) < self.model.n_fibres and all_fire < MAX_CURRENT_MA:
            all_fire = min(all_fire * 1.02, MAX_CURRENT_MA)  # the current that fires them all
        self.cond_ma = min(2.0 * all_fire, MAX_CURRENT_MA)
        self.max_ma = max_test_ratio * self.rest_ma
        if not (max_test_ratio > 1.0 and self.max_ma <= MAX_CURRENT_MA):
            raise ConfigError(
                f"max_test_ratio={max_test_ratio:g} is out of range; valid range "
                f"(1, {MAX_CURRENT_MA / self.rest_ma:.3g}] (the device limit "
                f"{MAX_CURRENT_MA:g} mA over the resting threshold "
                f"{self.rest_ma:.3g} mA)"
            )

    def _recruited(self, current_ma: float, interval_ms: float | None) -> int:
        """Fibres recruited by a pulse alone, or by a test pulse after the conditioning one."""
        self.model.reset()
        if interval_ms is None:
            out = self.model.stimulate(current_ma, self.pw_us, RECOVERY_CSF_MM, 1.0)
        else:
            out = self.model.stimulate(
                np.array([self.cond_ma, current_ma]),
                self.pw_us,
                RECOVERY_CSF_MM,
                np.array([1.0, interval_ms * 1e-3]),
            )
        return int(out["n_recruited"][-1])

    def threshold_ma(self, interval_ms: float | None, max_ma: float) -> float:
        """Smallest current (mA) that recruits a fibre; inf if none up to ``max_ma``.

        Bisection in log current, alone (``interval_ms`` None) or after the conditioning pulse.
        """
        if not self._recruited(max_ma, interval_ms):
            return math.inf
        lo, hi = 1e-3, max_ma
        for _ in range(BISECT_STEPS):
            mid = math.sqrt(lo * hi)
            lo, hi = (lo, mid) if self._recruited(mid, interval_ms) else (mid, hi)
        return hi

    def arp_bracket_ms(self, lo: float, hi: float, tol_ms: float = 0.02) -> list[float]:
        """The absolute refractory period's bracket (ms), refined to ``tol_ms``.

        Bisection on the interval between ``lo`` (refractory) and ``hi`` (a second AP) at the
        largest test current.
        """
        while hi - lo > tol_ms:
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if self._recruited(self.max_ma, mid) else (mid, hi)
        return [lo, hi]


def recovery(
    intervals_ms=RECOVERY_INTERVALS_MS,
    pw_us: float = 100.0,
    max_test_ratio: float = 10.0,
    params: ModelParams | None = None,
) -> dict:
    """Paired-pulse recovery cycle of the fast model, measured on the numba kernel.

    A 16-fibre patient without jitter receives a conditioning pulse that fires every fibre,
    then a test pulse after each interval; the test current is bisected for the first fibre to
    fire. Every fibre fired together, so they share the threshold multiplier and the first to
    fire is the one of lowest resting threshold. As in the MRG protocol, no second AP up to
    ``max_test_ratio`` times the resting threshold is absolute refractoriness, and the
    absolute refractory period is refined by bisection on the interval to 0.02 ms.

    Args:
        intervals_ms: Conditioning-test intervals (ms).
        pw_us: Pulse width of both pulses (µs).
        max_test_ratio: Largest test current relative to the resting threshold.
        params: Model parameters (defaults if None); population and jitter are overridden.

    Returns:
        ``{"diameter_um", "pw_us", "interval_ms", "threshold_ratio", "arp_bracket_ms",
        "arp_ms", "conditioning_ma", "resting_threshold_ma"}``; a ratio is None where no test
        pulse fires.
    """
    pp = _PairedPulse(params, pw_us, max_test_ratio)
    xs = sorted(float(x) for x in intervals_ms)
    ratios = [pp.threshold_ma(dt, pp.max_ma) / pp.rest_ma for dt in xs]
    ratios = [None if math.isinf(r) else r for r in ratios]
    fired = [x for x, r in zip(xs, ratios, strict=True) if r is not None]
    refractory = [x for x in xs if fired and x < fired[0]]
    bracket = (
        pp.arp_bracket_ms(refractory[-1] if refractory else 0.0, fired[0])
        if fired
        else [xs[-1], math.inf]
    )
    return {
        "diameter_um": 10.0,
        "pw_us": pw_us,
        "interval_ms": xs,
        "threshold_ratio": ratios,
        "arp_bracket_ms": bracket,
        "arp_ms": 0.5 * (bracket[0] + bracket[1]),
        "conditioning_ma": pp.cond_ma,
        "resting_threshold_ma": pp.rest_ma,
    }
