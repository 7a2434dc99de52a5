"""Numba kernels of the ECAP amplitude estimators, on the window of a recorded sweep.

Amplitudes are estimated in the window from ``t_end + blank`` to ``est_end`` (samples ``lo:hi``,
:func:`closedloop.neural.recording.window_bounds`): N1-P2 (the minimum, then the maximum after
it, :func:`n1p2`) and a sliding matched-filter (template) estimate (:func:`template_estimate`),
at the lag of the largest projection or at a lag tracked over pulses (:func:`tracked_projection`).
The filter is the reference ECAP made orthogonal, over the window, to a constant and to the
artefact decay (:func:`artefact_orthogonal`; so that the artefact, which exceeds the ECAP near
threshold, adds almost nothing at any lag), scaled so that the reference ECAP reads its own N1-P2
(:func:`closedloop.neural.recording.refresh_templates` builds it).
"""

from __future__ import annotations

import math

from numba import njit

from closedloop import _jit_cache  # noqa: F401 (before any @njit(cache=True): see it)


@njit(cache=True, inline="always")
def _lagged(art, s, lo, lag):
    """``art[s - lag]`` if that sample lies in the window from ``lo``, else 0."""
    return art[s - lag] if s - lag >= lo else 0.0


@njit(cache=True, inline="always")
def artefact_orthogonal(mf, art, lo, hi, lag):
    """Make ``mf[lo:hi]`` orthogonal to a constant and to the artefact decay at lags 0, ``-lag``.

    ``art`` is the artefact shape (``KernelState.shapes[0]``). With ``v1 = 1``,
    ``v2 = a - mean(a)`` and ``v3`` = the artefact as the estimator reads it at lag ``-lag``
    (``a[s - lag]``, zero for the first ``lag`` samples) less its projections on ``v1`` and
    ``v2``, ``mf`` loses its projection on each in turn (Gram-Schmidt, no storage). The sliding
    estimate then reads no artefact at lag 0 and at the lag where the window's edge cuts it
    most, and little at the lags between (default patient, 300 µs, noise off, below threshold:
    0.2-1.9 µV at 0-2 mA, ADC rounding included; a filter orthogonal at lag 0 only read up to
    11 µV), while the filter keeps the ECAP's N1 (assumption: the device's detector rejects
    the artefact, which exceeds the ECAP near threshold).
    """
    n = hi - lo
    mean, am, bm = 0.0, 0.0, 0.0
    for s in range(lo, hi):
        mean += mf[s]
        am += art[s]
        bm += _lagged(art, s, lo, lag)
    mean, am, bm = mean / n, am / n, bm / n
    aa, ba = 0.0, 0.0
    for s in range(lo, hi):
        mf[s] -= mean
        v2 = art[s] - am
        aa += v2 * v2
        ba += (_lagged(art, s, lo, lag) - bm) * v2
    if not aa > 0.0:
        return
    kb = ba / aa
    ea = 0.0
    for s in range(lo, hi):
        ea += mf[s] * (art[s] - am)
    ka = ea / aa
    vv, eb = 0.0, 0.0
    for s in range(lo, hi):
        mf[s] -= ka * (art[s] - am)
        v3 = (_lagged(art, s, lo, lag) - bm) - kb * (art[s] - am)
        vv += v3 * v3
        eb += mf[s] * v3
    if vv > 0.0:
        k3 = eb / vv
        for s in range(lo, hi):
            mf[s] -= k3 * ((_lagged(art, s, lo, lag) - bm) - kb * (art[s] - am))


@njit(cache=True, inline="always")
def clipped(x, lo, hi, top):
    """Whether any sample of ``x[lo:hi]`` sits at the ADC rails ``±top``."""
    for s in range(lo, hi):  # noqa: SIM110 (a loop numba compiles)
        if x[s] >= top or x[s] <= -top:
            return True
    return False


@njit(cache=True, inline="always")
def n1p2(x, lo, hi):
    """N1-P2 amplitude in ``x[lo:hi]`` and the index of N1 (the minimum)."""
    i_min, mn = lo, x[lo]
    for s in range(lo + 1, hi):
        if x[s] < mn:
            mn, i_min = x[s], s
    mx = mn
    for s in range(i_min, hi):
        if x[s] > mx:
            mx = x[s]
    return mx - mn, i_min


@njit(cache=True, inline="always")
def template_estimate(mf, cache, x, lo, hi, max_lag, scratch, track, pw_us, interval_s):
    """Sliding matched-filter amplitude of ``x`` in µV (the template's N1-P2 scale).

    ``mf``, ``cache`` and ``track`` are the ``KernelState`` fields ``mf``, ``cache`` and
    ``lag_track``; ``scratch`` is ``KernelWork.scratch`` (at least ``hi - lo + 4 max_lag + 16``
    long); ``pw_us`` (µs) and ``interval_s`` (s) are the pulse's width and the time since the
    previous pulse.

    The zero-mean template over ``lo:hi`` is slid by up to ``max_lag`` samples either way (the
    ECAP arrives later as smaller fibres join), giving one projection per lag
    (:func:`lag_projections`). With ``track[0] = 0`` the largest projection is kept. With a
    time constant ``track[0] > 0`` (s, ``RecordingParams.lag_tracking_s``) the lag is tracked
    instead (:func:`tracked_projection`): the maximum over lags of a noisy projection reads
    high (by about one noise sd with noise alone), the projection at a lag chosen from earlier
    pulses does not.
    """
    n_lag = 2 * max_lag + 1
    if track.size < n_lag + 2:  # the kernels run without bounds checks
        raise ValueError(
            "KernelState.lag_track is too short for this template lag; make the "
            "state with NeuralModel.initial_state"
        )
    dots = lag_projections(mf, x, lo, hi, max_lag, scratch)
    if track[0] > 0.0:
        best = tracked_projection(dots, n_lag, track, pw_us, interval_s)
    else:
        best = dots[_argmax(dots, n_lag)]
    return best * cache[1] * cache[2]


@njit(cache=True, inline="always")
def _argmax(x, n):
    """The first index of the largest of ``x[:n]``."""
    k = 0
    for q in range(1, n):
        if x[q] > x[k]:
            k = q
    return k


@njit(cache=True, inline="always")
def tracked_projection(dots, n_lag, track, pw_us, interval_s):
    """The projection ``dots[q]`` at the lag that maximises the average of earlier pulses'.

    ``track`` is ``KernelState.lag_track``: ``[0]`` the time constant tau (s), ``[1]`` the
    pulse width (µs) the average belongs to (NaN: none yet), ``[2:2 + n_lag]`` the
    exponentially weighted average of the projections of the earlier pulses at each lag.
    The pulse reads its own projection at the first lag where the average is largest (at the
    first pulse, or after a pulse-width change, the largest of its own projections), then
    moves the average towards its projections by ``1 - exp(-interval_s / tau)`` (all the way
    at the first pulse or after a width change). Because the lag is chosen without this
    pulse's noise, the estimate is unbiased wherever the average's lag is the ECAP's.
    """
    avg = track[2 : 2 + n_lag]
    if track[1] == pw_us:
        best = dots[_argmax(avg, n_lag)]
        alpha = -math.expm1(-interval_s / track[0])
    else:
        best = dots[_argmax(dots, n_lag)]
        track[1] = pw_us
        alpha = 1.0
    for q in range(n_lag):
        avg[q] += alpha * (dots[q] - avg[q])
    return best


@njit(cache=True, inline="always")
def lag_projections(mf, x, lo, hi, max_lag, scratch):
    """Projections of ``x`` on the filter ``mf`` at lags ``-max_lag..max_lag`` (a view).

    Element ``q`` of the returned view of ``scratch`` is ``sum_s x[s + q - max_lag] mf[s]``
    over the ``s`` for which both ``s`` and ``s + q - max_lag`` lie in ``lo:hi`` (elements
    from ``2 max_lag + 1`` on are padding). Only samples inside ``lo:hi`` are read, so the
    sweep outside the window does not matter.

    The window is copied between zeros, so that every sample adds to every lag (a whole number
    of vectors of them, a fixed-length loop that vectorises): a sample outside the window adds
    an exact zero, which leaves each lag's left-to-right sum bit for bit as it was.
    """
    n_lag = 2 * max_lag + 1
    n = hi - lo
    width = (n_lag + 3) // 4 * 4
    if scratch.size < n + 2 * width:  # the kernels run without bounds checks
        raise ValueError(
            "KernelWork.scratch is too short for this window and template lag; "
            "make the KernelWork with new_work(..., max_lag)"
        )
    scratch = scratch[: n + 2 * width]
    scratch[:] = 0.0
    padded, dots = scratch[: n + width], scratch[n + width :]
    for s in range(n):  # a loop: slice assignment may allocate a copy
        padded[max_lag + s] = x[lo + s]
    mf = mf[lo:hi]
    for s in range(n):
        w = mf[s]
        for q in range(width):  # indices, not a view per sample: no slice set-up per sample
            dots[q] += padded[s + q] * w
    return dots


@njit(cache=True, inline="always")
def n1_latency(neural, i_min, lo, hi, dt_ms):
    """N1 time (ms) by parabolic refinement around sample ``i_min`` inside ``lo:hi``."""
    if i_min <= lo or i_min >= hi - 1:
        return i_min * dt_ms
    a, b, c = neural[i_min - 1], neural[i_min], neural[i_min + 1]
    den = a - 2.0 * b + c
    off = 0.5 * (a - c) / den if den > 0.0 else 0.0
    return (i_min + off) * dt_ms
