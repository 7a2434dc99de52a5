"""Which pulses a protocol scores: postures scored separately, and the time axis of a subset.

An env may declare postures that its primary metrics leave out (``EnvConfig.unscored_postures``;
the clinic envs list ``prone``, where no current within the patients' limits reaches perception,
see ``docs/clinic_protocol.md``). :func:`unscored_mask` marks those pulses: every pulse in such a
posture, and the pulses less than ``after_s`` after leaving it (the transition ramp out of it;
the ramp into it already carries the posture's code). :func:`unscored_metrics` scores them on
their own (the ``unscored_*`` keys of :data:`UNSCORED_DOCS`).

Scoring a subset of pulses keeps each pulse's own time weight (the time to the next pulse of the
full run): :func:`subset_times` returns a time axis on which the kept pulses are contiguous, so
the metric functions, which weigh pulses by the gaps between their times, give the excluded gap
no weight.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from closedloop._config import ConfigError
from closedloop.metrics._checks import _per_pulse, _scalar, _time, time_weights_s
from closedloop.patients.postures import POSTURES, posture_code

UNSCORED_DOCS: dict[str, str] = {
    "unscored_duration_s": "time in the env's unscored postures and their ramp out, after "
    "warm-up; 0 if none (s)",
    "unscored_mad_uv": "time-weighted mean |ECAP - target| over the unscored time, NaN if none "
    "(µV)",
    "unscored_time_in_window_frac": "fraction of the unscored time with 1 <= sensation < "
    "discomfort, NaN if none (1)",
    "unscored_time_below_perception_frac": "fraction of the unscored time with sensation < 1, "
    "NaN if none (1)",
    "unscored_time_above_discomfort_frac": "fraction of the unscored time with sensation >= "
    "discomfort, NaN if none (1)",
    "unscored_charge_per_pulse_uc": "mean charge per phase per pulse over the unscored time, NaN "
    "if none (µC)",
}
"""Key -> meaning with unit of the separately scored (unscored-posture) metrics."""


def posture_codes(postures: Any, name: str = "unscored_postures") -> tuple[int, ...]:
    """Posture codes of a list of posture names; ConfigError naming ``name`` otherwise.

    Args:
        postures: Posture names (:data:`closedloop.patients.postures.POSTURES`), distinct; not all
        of
            them (something must remain scored).
        name: The parameter's name, for messages.
    """
    if isinstance(postures, str) or not isinstance(postures, (tuple, list)):
        raise ConfigError(
            f"{name}={postures!r} must be a list of posture names among {', '.join(POSTURES)}"
        )
    codes = []
    for i, p in enumerate(postures):
        if not isinstance(p, str) or p not in POSTURES:
            raise ConfigError(f"{name}[{i}]={p!r} is not a posture; valid: {', '.join(POSTURES)}")
        if posture_code(p) in codes:
            raise ConfigError(f"{name}[{i}]={p!r} is listed twice")
        codes.append(posture_code(p))
    if len(codes) == len(POSTURES):
        raise ConfigError(f"{name} lists every posture; at least one must stay scored")
    return tuple(codes)


def unscored_mask(t_s: Any, posture: Any, postures: Any, after_s: float = 0.0) -> np.ndarray:
    """Pulses in one of ``postures``, or less than ``after_s`` after leaving one.

    Args:
        t_s: Pulse times (s), strictly increasing.
        posture: Posture code per pulse (:data:`closedloop.patients.postures.POSTURES` indices).
        postures: Names of the unscored postures (may be empty).
        after_s: Time after leaving an unscored posture that is still unscored (s), >= 0:
            the transition ramp out of it.

    Returns:
        Boolean per pulse, True where the pulse is not scored by the primary metrics.
    """
    t, _ = _time(t_s)
    codes = posture_codes(postures)
    after = _scalar("after_s", after_s, lo=0.0, unit="s")
    pose = np.asarray(posture)
    if pose.shape != t.shape or pose.dtype.kind not in "iu":
        raise ConfigError(
            f"posture must be an integer array of length {t.size} (one posture "
            f"code per pulse), got dtype {pose.dtype} and shape {pose.shape}"
        )
    inside = np.isin(pose, codes)
    mask = inside.copy()
    if after > 0.0:
        exits = np.flatnonzero(inside[:-1] & ~inside[1:]) + 1
        for k in exits:
            mask[k : int(np.searchsorted(t, t[k] + after, side="left"))] = True
    return mask


def subset_times(t_s: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """A time axis for the pulses ``keep`` on which they are contiguous (s).

    Each kept pulse but the last is followed, on the new axis, after its own time weight in the
    full run (:func:`time_weights_s`), so excluded gaps weigh nothing. If ``keep`` is one
    contiguous run the kept times are returned unchanged.

    Args:
        t_s: Pulse times of the full run (s), strictly increasing.
        keep: Boolean per pulse, at least one True.
    """
    idx = np.flatnonzero(keep)
    if idx[-1] - idx[0] + 1 == idx.size:
        return t_s[idx]
    w = time_weights_s(t_s)[idx]
    return t_s[idx[0]] + np.concatenate(([0.0], np.cumsum(w[:-1])))


def unscored_metrics(
    t_s: Any,
    ecap_uv: Any,
    target_uv: Any,
    sensation: Any,
    discomfort: Any,
    charge_uc: Any,
    unscored: np.ndarray,
) -> dict[str, float]:
    """The ``unscored_*`` metrics of :data:`UNSCORED_DOCS` over the pulses ``unscored``.

    Args:
        t_s: Pulse times (s) of the scored run (after warm-up), strictly increasing.
        ecap_uv: ECAP per pulse (µV).
        target_uv: Target (µV): scalar or per pulse.
        sensation: Sensation per pulse (perception-threshold units).
        discomfort: Discomfort level: scalar or per pulse.
        charge_uc: Charge per phase per pulse (µC).
        unscored: Boolean per pulse; NaN metrics (duration 0) if none is True.
    """
    t, w = _time(t_s)
    sel = np.asarray(unscored, dtype=bool)
    if not sel.any():
        return {"unscored_duration_s": 0.0, **dict.fromkeys(list(UNSCORED_DOCS)[1:], math.nan)}
    ws = w[sel]

    def per(name: str, x: Any, **kw: Any) -> np.ndarray:
        return _per_pulse(name, x, t.size, scalar_ok=True, **kw)[sel]

    err = np.abs(
        per("ecap_uv", ecap_uv, unit="µV")
        - per("target_uv", target_uv, lo=0.0, lo_open=True, unit="µV")
    )
    s = per("sensation", sensation, lo=0.0)
    d = per("discomfort", discomfort, lo=1.0, lo_open=True)
    below, above = s < 1.0, s >= d
    return {
        "unscored_duration_s": float(np.sum(ws)),
        "unscored_mad_uv": float(np.average(err, weights=ws)),
        "unscored_time_in_window_frac": float(np.average(~below & ~above, weights=ws)),
        "unscored_time_below_perception_frac": float(np.average(below, weights=ws)),
        "unscored_time_above_discomfort_frac": float(np.average(above, weights=ws)),
        "unscored_charge_per_pulse_uc": float(
            np.mean(per("charge_uc", charge_uc, lo=0.0, unit="µC"))
        ),
    }
