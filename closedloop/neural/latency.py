"""Numba kernels of a fibre's latency: conduction velocity, initiation delay above threshold."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from closedloop import _jit_cache  # noqa: F401 (before any @njit(cache=True): see it)
from closedloop._config import ConfigError

TEMPLATE_RATIO = 1.3
"""Current / threshold ratio at whose initiation delay the class templates are cached."""


@njit(cache=True, inline="always")
def cv_at(diameter_um, cv_per_um, intercept_m_s):
    """Conduction velocity (m/s) of a fibre of ``diameter_um`` (µm): ``cv_per_um D + intercept``."""
    return cv_per_um * diameter_um + intercept_m_s


@njit(cache=True)
def regen_delay_ms(u, log_ms, ratio_scale, log_max_ms):
    """Regenerative part (ms) of the initiation delay at ``u`` = threshold / current in [0, 1].

    ``min(log_ms * ln(1 + ratio_scale / (r - 1)), log_max_ms)`` with r = 1 / u: it grows as
    ln(1 / (r - 1)) near threshold and is capped at ``log_max_ms`` (reached at r = 1).
    """
    d = 1.0 - u
    return log_max_ms if d <= 0.0 else min(log_ms * math.log1p(ratio_scale * u / d), log_max_ms)


@njit(cache=True, inline="always")
def delay_at(u, pw_us, offset_ms, pw_fraction, table):
    """Initiation delay (ms after pulse onset) of a fibre at ``u`` = threshold / current.

    ``u`` in [0, 1] is the inverse of the current ratio r = I / th (r >= 1). The delay is
    ``offset + pw_fraction * PW * u`` (the charging time inside the pulse, PW in ms) plus the
    regenerative part (:func:`regen_delay_ms`) interpolated linearly in ``table``
    (``KernelTables.init_delay_ms``: its values at u = k / (M - 1), k = 0..M-1, then a copy of
    the last), which spares the kernel a logarithm per recruited fibre.
    """
    x = u * (table.size - 2)
    k = min(np.uint32(x), np.uint32(table.size - 2))  # unsigned: no wraparound code (u >= 0)
    g0 = table[k]
    return offset_ms + pw_fraction * (pw_us * 1e-3) * u + (g0 + (x - k) * (table[k + 1] - g0))


@njit(cache=True, inline="always")
def template_delay_ms(pw_us, kparams, table):
    """Initiation delay (ms) at which the class templates are cached (``TEMPLATE_RATIO``)."""
    return delay_at(
        1.0 / TEMPLATE_RATIO, pw_us, kparams.init_offset_ms, kparams.init_pw_fraction, table
    )


INIT_TABLE_SIZE = 1024
"""Grid points M of ``KernelTables.init_delay_ms`` on u = threshold / current in [0, 1]
(interpolation error below 0.003 ms for I / th > 1.002 at the default parameters)."""


@njit(cache=True)
def _regen_table(n, log_ms, ratio_scale, log_max_ms):
    out = np.empty(n + 1)
    for k in range(n):
        out[k] = regen_delay_ms(k / (n - 1), log_ms, ratio_scale, log_max_ms)
    out[n] = out[n - 1]
    return out


def initiation_table(response_params) -> np.ndarray:
    """``KernelTables.init_delay_ms`` for a :class:`~closedloop.neural.params.ResponseParams`."""
    rp = response_params
    return _regen_table(
        INIT_TABLE_SIZE,
        float(rp.initiation_log_ms),
        float(rp.initiation_ratio_scale),
        float(rp.initiation_log_max_ms),
    )


@njit(cache=True)
def _cv_many(d_um, cv_per_um, intercept_m_s, out):
    for i in range(d_um.size):
        out[i] = cv_at(d_um[i], cv_per_um, intercept_m_s)


@njit(cache=True)
def delay_many(u, pw_us, offset_ms, pw_fraction, table, out):
    """:func:`delay_at` of each ``u[i]``, ``pw_us[i]`` into ``out`` (ms)."""
    for i in range(u.size):
        out[i] = delay_at(u[i], pw_us[i], offset_ms, pw_fraction, table)


def conduction_velocity_m_s(diameter_um, response_params) -> np.ndarray | float:
    """Conduction velocity (m/s) of fibres of the given diameters (µm).

    ``response_params.cv_per_um * D + response_params.cv_intercept_m_s`` (the kernels' law).

    Args:
        diameter_um: Fibre diameter(s) (µm), a number or an array.
        response_params: A :class:`~closedloop.neural.params.ResponseParams`.

    Returns:
        A float for a number, else an array of the input's shape (m/s).
    """
    d = np.asarray(diameter_um, dtype=np.float64)
    out = np.empty(d.size)
    _cv_many(
        np.ascontiguousarray(d.ravel()),
        float(response_params.cv_per_um),
        float(response_params.cv_intercept_m_s),
        out,
    )
    return float(out[0]) if d.ndim == 0 else out.reshape(d.shape)


def initiation_delay_ms(current_ratio, pw_us, response_params) -> np.ndarray | float:
    """Time (ms) from pulse onset to the spike at the stimulated node (the kernels' law).

    The kernels' computation (:func:`delay_at`, with the regenerative part tabulated); see
    ``ResponseParams`` for the law and its parameters (fitted to MRG at 37 °C).

    Args:
        current_ratio: Current / the fibre's threshold at this pulse width, >= 1 (broadcast
            with ``pw_us``).
        pw_us: Width of the cathodic phase (µs), > 0.
        response_params: A :class:`~closedloop.neural.params.ResponseParams`.

    Returns:
        A float for scalar inputs, else an array of the broadcast shape (ms).

    Raises:
        ConfigError: If a ratio is below 1 or NaN, or a pulse width is not positive.
    """
    r, pw = np.broadcast_arrays(
        np.asarray(current_ratio, dtype=np.float64), np.asarray(pw_us, dtype=np.float64)
    )
    if not (r >= 1.0).all():
        raise ConfigError("current_ratio must be >= 1 (a recruited fibre); valid range [1, inf]")
    if not ((pw > 0.0) & np.isfinite(pw)).all():
        raise ConfigError("pw_us must be a finite number > 0; valid range (0, inf) µs")
    rp = response_params
    out = np.empty(r.size)
    delay_many(
        np.ascontiguousarray(1.0 / r.ravel()),
        np.ascontiguousarray(pw.ravel()),
        float(rp.initiation_offset_ms),
        float(rp.initiation_pw_fraction),
        initiation_table(rp),
        out,
    )
    return float(out[0]) if r.ndim == 0 else out.reshape(r.shape)
