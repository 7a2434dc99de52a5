"""The paired-pulse recovery cycle of an MRG fibre in NEURON, and its features.

Part of the stored validation reference (:mod:`closedloop.fidelity.mrg_reference`); the
threshold protocols are in :mod:`closedloop.fidelity.mrg_protocols`. Returns plain lists
(JSON-ready).
"""

from __future__ import annotations

import math

import numpy as np

from closedloop.fidelity.mrg import MRGFibre, Pulse, monophasic
from closedloop.fidelity.mrg_protocols import DT_MS, LENGTH_MM, first_guess_ma

# --- paired-pulse recovery cycle ----------------------------------------------------------------

RECOVERY_DIAMETERS_UM = (10.0, 5.7, 16.0)
RECOVERY_INTERVALS_MS = (
    *(round(0.4 + 0.1 * k, 1) for k in range(17)),
    2.5,
    3.0,
    3.5,
    4.0,
    5.0,
    6.0,
    7.0,
    8.0,
    10.0,
    12.0,
    15.0,
    20.0,
    25.0,
    30.0,
    40.0,
    50.0,
    70.0,
    100.0,
)
RECOVERY_DISTANCE_MM = 2.0
RECOVERY_PW_US = 100.0
RECOVERY_CONDITIONING = 2.0
"""Conditioning pulse, in multiples of the resting threshold."""
RECOVERY_MAX_RATIO = 10.0
"""No second AP up to this multiple of the resting threshold: absolutely refractory."""
RECOVERY_TAIL_MS = 1.5
RECOVERY_REL_TOL = 0.001


def _search(fires, guess: float, max_amp: float, rel_tol: float) -> float:
    """Smallest amplitude in (0, max_amp] for which ``fires(amp)`` holds (inf if none).

    Bisection in log amplitude from a bracket around ``guess``; ``fires`` is assumed monotonic.
    """
    if not fires(max_amp):
        return math.inf
    lo, hi = guess / 1.05, min(guess * 1.05, max_amp)
    while not fires(hi):
        lo, hi = hi, min(hi * 1.5, max_amp)
    while fires(lo):
        hi, lo = lo, lo / 1.5
    while hi / lo > 1.0 + rel_tol:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if fires(mid) else (mid, hi)
    return hi


class _PairedPulse:
    """A fibre with the conditioning response stored as NEURON states at the test onsets."""

    def __init__(self, diameter_um, distance_mm, pw_us, length_mm, dt_ms):
        self.fibre = MRGFibre(diameter_um, length_mm=length_mm, dt_ms=dt_ms)
        self.ve = self.fibre.point_source(distance_mm)
        self.pw_ms = pw_us * 1e-3
        self.node = min(self.fibre.centre + 8, self.fibre.n_nodes - 1)  # as MRGFibre.threshold
        self.rest_ma, _ = self.fibre.threshold(
            self.ve,
            monophasic(self.pw_ms),
            first_guess_ma(diameter_um, distance_mm, pw_us),
            tail_ms=RECOVERY_TAIL_MS,
            rel_tol=RECOVERY_REL_TOL,
        )
        self.conditioning = [Pulse(0.0, self.pw_ms, -RECOVERY_CONDITIONING * self.rest_ma)]
        self.fibre.start()
        self.cond_states: dict[float, object] = {0.0: self.fibre.save_state()}

    def state_at(self, interval_ms: float):
        """The conditioned state at ``interval_ms`` (advanced from the latest stored one)."""
        t = round(interval_ms / self.fibre.dt_ms) * self.fibre.dt_ms
        if t not in self.cond_states:
            self.fibre.restore(self.cond_states[max(k for k in self.cond_states if k < t)])
            self.fibre.play(self.ve, self.conditioning, t)
            self.cond_states[t] = self.fibre.save_state()
        return self.cond_states[t]

    def fires(self, interval_ms: float, amp_ma: float) -> bool:
        """Whether a test pulse ``interval_ms`` after the conditioning gets an AP to the node."""
        self.fibre.restore(self.state_at(interval_ms))
        t0 = self.fibre.h.t
        t = self.fibre.play(
            self.ve,
            [Pulse(t0, self.pw_ms, -amp_ma)],
            t0 + self.pw_ms + RECOVERY_TAIL_MS,
            watch_node=self.node,
        )
        return not math.isnan(t)


def recovery_cycle(
    diameter_um: float,
    intervals_ms=RECOVERY_INTERVALS_MS,
    distance_mm: float = RECOVERY_DISTANCE_MM,
    pw_us: float = RECOVERY_PW_US,
    length_mm: float = LENGTH_MM,
    dt_ms: float = DT_MS,
    arp_tol_ms: float = 0.02,
) -> dict:
    """Paired-pulse recovery cycle of one fibre (cathodic monophasic point source).

    A conditioning pulse at :data:`RECOVERY_CONDITIONING` times the resting threshold at t = 0,
    then a test pulse ``interval`` later; the test threshold is the smallest test current that
    gets a second AP to the node 8 nodes from the centre (relative precision 0.1 %). The
    absolute refractory period (ARP) is refined by bisection on the interval: the last interval
    without a second AP at :data:`RECOVERY_MAX_RATIO` times the resting threshold.

    Args:
        diameter_um: Fibre diameter (µm).
        intervals_ms: Conditioning-test intervals (ms).
        distance_mm: Source-fibre distance (mm).
        pw_us: Pulse width of both pulses (µs).
        length_mm: Fibre length (mm).
        dt_ms: Time step (ms).
        arp_tol_ms: Width of the final ARP bracket (ms).

    Returns:
        ``{"diameter_um", "rest_threshold_ma", "interval_ms", "threshold_ratio" (None:
        refractory), "arp_bracket_ms", **recovery_features}``.
    """
    pp = _PairedPulse(diameter_um, distance_mm, pw_us, length_mm, dt_ms)
    for iv in sorted(intervals_ms):  # one conditioned run, stored at every test onset
        pp.state_at(iv)
    ratios: dict[float, float] = {}
    guess = 1.0
    for iv in sorted(intervals_ms, reverse=True):  # long to short: the ratio grows
        th = _search(
            lambda a, iv=iv: pp.fires(iv, a),
            guess * pp.rest_ma,
            RECOVERY_MAX_RATIO * pp.rest_ma,
            RECOVERY_REL_TOL,
        )
        ratios[iv] = th / pp.rest_ma
        guess = ratios[iv] if math.isfinite(ratios[iv]) else guess
    xs = sorted(ratios)
    refractory = [x for x in xs if not math.isfinite(ratios[x])]
    bracket = [
        max(refractory) if refractory else 0.0,
        min(x for x in xs if math.isfinite(ratios[x]) and x > max(refractory or [0.0])),
    ]
    while bracket[1] - bracket[0] > arp_tol_ms + 1e-9:
        mid = round(0.5 * sum(bracket) / dt_ms) * dt_ms
        if mid in bracket:
            break
        bracket[pp.fires(mid, RECOVERY_MAX_RATIO * pp.rest_ma)] = mid
    ys = [ratios[x] if math.isfinite(ratios[x]) else None for x in xs]
    return {
        "diameter_um": diameter_um,
        "rest_threshold_ma": pp.rest_ma,
        "interval_ms": xs,
        "threshold_ratio": ys,
        "arp_bracket_ms": bracket,
        **recovery_features(xs, ys, 0.5 * sum(bracket)),
    }


def recovery_features(interval_ms, ratio, arp_ms: float) -> dict:
    """ARP, end of the relative refractory period, supernormality and late subnormality.

    Args:
        interval_ms: Intervals (ms), ascending.
        ratio: Test / resting threshold (None: refractory).
        arp_ms: The absolute refractory period (ms).

    Returns:
        ``arp_ms``; ``rrp_end_ms`` (first fall of the ratio to 1 after the ARP, linearly
        interpolated); ``supernormal_pct`` (min ratio - 1, %, negative when supernormal) and
        ``supernormal_ms``; ``subnormal_pct`` (max ratio - 1 after that minimum, %) and
        ``subnormal_ms``.
    """
    x = np.asarray(interval_ms, float)
    y = np.array([np.nan if r is None else r for r in ratio], float)
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    below = np.flatnonzero(y <= 1.0)
    out = {
        "arp_ms": float(arp_ms),
        "rrp_end_ms": None,
        "supernormal_pct": None,
        "supernormal_ms": None,
        "subnormal_pct": None,
        "subnormal_ms": None,
    }
    if below.size == 0 or below[0] == 0:
        return out
    k = below[0]
    out["rrp_end_ms"] = float(x[k - 1] + (y[k - 1] - 1.0) / (y[k - 1] - y[k]) * (x[k] - x[k - 1]))
    i_min = k + int(np.argmin(y[k:]))
    out["supernormal_pct"], out["supernormal_ms"] = 100.0 * (y[i_min] - 1.0), float(x[i_min])
    if i_min + 1 < y.size:
        i_max = i_min + 1 + int(np.argmax(y[i_min + 1 :]))
        out["subnormal_pct"], out["subnormal_ms"] = 100.0 * (y[i_max] - 1.0), float(x[i_max])
    return out


__all__ = ["recovery_cycle", "recovery_features"]
