"""A slow NumPy reference of the control step, for tests (:mod:`closedloop.envs.step`).

:func:`reference_step` is the step written plainly, pulse arrays and NumPy means around the
neural model's :class:`~closedloop.neural.pulse_runner.PulseRunner`, with nothing shared with
:func:`~closedloop.envs.step.control_step` but the one copies of the action mapping
(:func:`~closedloop.envs.config.requested_current`), the device limits
(:func:`~closedloop.device_limits.limit_one`), the sensation filter
(:func:`~closedloop.patients.perception.sensation_update`) and the reward formula. Tests step one
episode with each and require the same arrays, bit for bit.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from closedloop.device_limits import limit_one
from closedloop.envs.config import requested_current, reward_formula
from closedloop.envs.episode import Episode
from closedloop.envs.step import PW_RANGE_US, RATE_RANGE_HZ
from closedloop.patients.perception import sensation_update


def _lerp(a: float, lo: float, hi: float) -> float:
    return lo + 0.5 * (a + 1.0) * (hi - lo)


def _pulse_times(prm, t_s: float, n: int, rate: float) -> np.ndarray:
    """Trace index of each of the step's ``n`` pulses."""
    k = ((t_s + np.arange(n) / rate) * prm["rate_hz"] + 1e-9).astype(np.int64)
    return np.minimum(k, int(prm["last"]))


def _ramp(ep: Episode, prm, a0: float, pw: float, k: np.ndarray) -> tuple:
    """The device's pulse-by-pulse ramp: delivered currents, flags and impedances."""
    st = ep.state[0]
    requested = requested_current(
        int(prm["action_mode"]),
        a0,
        float(st["current_ma"]),
        float(prm["min_ma"]),
        float(prm["max_ma"]),
        float(prm["max_delta_ma"]),
        float(prm["max_log_step"]),
    )
    imp = prm["impedance_ohm"] * ep.scale[0, k]
    cur, currents, flags = float(st["current_ma"]), np.empty(k.size), np.zeros(k.size, np.int64)
    for j in range(k.size):
        cur, flags[j] = limit_one(
            requested,
            cur,
            pw,
            imp[j],
            float(prm["min_ma"]),
            float(prm["max_ma"]),
            float(prm["max_current_ma"]),
            float(prm["max_change_ma"]),
            float(prm["max_charge_uc"]),
            float(prm["compliance_v"]),
        )
        currents[j] = cur
    return currents, flags, imp


def reference_step(ep: Episode, runner, action) -> None:
    """One step of the episode ``ep`` (one patient), as :func:`~.step.control_step` does it.

    Args:
        ep: The episode's arrays (patient axis of length 1); its state, observation, result
            and per-pulse arrays are updated.
        runner: A :class:`~closedloop.neural.pulse_runner.PulseRunner` of the patient's model, with
            ``pulses_per_step`` pulses (and sweeps for an observation that holds them).
        action: The action (1 or 3 components in [-1, 1]).
    """
    prm, st = ep.params[0], ep.state[0]
    a = [float(x) for x in np.ravel(action)] + [0.0, 0.0]
    pw, rate = float(prm["pw_us"]), float(prm["rate_hz"])
    if prm["control_pw_rate"]:
        pw, rate = _lerp(a[1], *PW_RANGE_US), _lerp(a[2], *RATE_RANGE_HZ)
    n = ep.pulse_current.shape[1]
    k = _pulse_times(prm, float(st["t_s"]), n, rate)
    currents, flags, imp = _ramp(ep, prm, a[0], pw, k)
    rec = runner.run(currents, pw, ep.csf[0, k], 1.0 / rate)
    per = SimpleNamespace(
        reference_rate_hz=float(prm["reference_rate_hz"]),
        rate_exponent=float(prm["rate_exponent"]),
        tau_s=float(prm["tau_s"]),
        perception_fraction=float(prm["perception_fraction"]),
    )
    feel, level = sensation_update(float(st["level"]), rec["frac_recruited"], 1.0 / rate, rate, per)
    st["level"], st["current_ma"] = level, currents[-1]
    st["t_s"] = float(st["t_s"]) + n / rate
    ecap, detected = float(rec["ecap_uv"].mean()), float(rec["detected"].mean())
    _push(ep, prm, ecap, detected, currents[-1], runner.wave)
    target = float(prm["target_uv"])
    above = float(np.mean(feel >= prm["discomfort_level"]))
    charge = float(rec["charge_uc"].mean())
    err = float(np.mean(np.abs(rec["ecap_true_uv"] - target)))
    res = ep.result[0]
    res["reward"] = reward_formula(
        float(prm["w_tracking"]),
        float(prm["w_discomfort"]),
        float(prm["w_charge"]),
        err,
        target,
        above,
        charge,
        float(prm["comfort_charge_uc"]),
        float(prm["w_window"]),
        float(np.mean((feel >= 1.0) & (feel < prm["discomfort_level"]))),
    )
    res["ecap_uv"], res["ecap_true_uv"] = ecap, float(rec["ecap_true_uv"].mean())
    res["sensation"], res["above_frac"], res["charge_uc"] = feel[-1], above, charge
    res["current_ma"], res["impedance_ohm"] = currents[-1], imp[-1]
    res["csf_mm"], res["posture"] = ep.csf[0, k[-1]], ep.posture[0, k[-1]]
    res["event"] = ep.event[0, k[-1]]
    res["device_flags"] = int(np.bitwise_or.reduce(flags))
    res["csf_clipped"] = bool((ep.clip[0, k] != 0).any())
    res["in_window"] = 1.0 <= feel[-1] < prm["discomfort_level"]
    res["overstim"] = above > 0
    res["truncated"] = float(st["t_s"]) * prm["rate_hz"] >= prm["last"] + 0.5
    res["pw_us"], res["rate_hz"] = pw, rate
    ep.pulse_current[0], ep.pulse_impedance[0], ep.pulse_flags[0] = currents, imp, flags


def _push(ep: Episode, prm, ecap: float, detected: float, current: float, wave) -> None:
    """Shift the observed history one step and add the newest values (and the last sweep)."""
    h, bound = int(prm["history"]), float(prm["bound_uv"])
    hist = ep.obs[0, : 3 * h].reshape(3, h)
    hist[:, 1:] = hist[:, :-1].copy()
    hist[:, 0] = (min(max(ecap, -bound), bound), detected, current)
    if wave.shape[0]:
        ep.obs[0, 3 * h + 1 :] = np.clip(wave[-1], -1e4, 1e4)
