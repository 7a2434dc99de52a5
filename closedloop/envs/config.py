"""Environment configuration and the suite of registered ids, read from ``envs/*.toml``.

One spec file per registered Gymnasium id. A spec has ``id``, ``description`` and ``[env]``
(fields of :class:`EnvConfig`), optionally ``[reward]`` (:class:`RewardWeights`) and ``[device]``
(:class:`~closedloop.device.DeviceParams`). ``gymnasium.make(id, **overrides)`` takes the same
keys as keyword arguments (``reward`` and ``device`` as dicts); unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numba
import numpy as np

from closedloop._config import ConfigError, from_dict, param, validate
from closedloop._specdirs import spec_dir
from closedloop.device import DeviceParams
from closedloop.metrics.scoring import posture_codes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ACTION_MODES = ("absolute", "incremental", "multiplicative")


@dataclasses.dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (see :mod:`closedloop.envs.ecap_env`)."""

    tracking: float = param(
        1.0, "1", "design choice", 0.0, 1e3, doc="weight of |true ECAP - target| / target"
    )
    discomfort: float = param(
        1.0, "1", "design choice", 0.0, 1e3, doc="penalty per control step spent above discomfort"
    )
    charge: float = param(
        0.05,
        "1",
        "design choice",
        0.0,
        1e3,
        doc="weight of charge per pulse / the comfort charge per pulse",
    )
    window: float = param(
        0.0,
        "1",
        "design choice (issue 22: the benchmark's primary metric as a reward term)",
        0.0,
        1e3,
        doc="bonus per control step spent in the therapeutic window (1 <= sensation < "
        "discomfort), as the fraction of the step's pulses",
    )

    def __post_init__(self) -> None:
        validate(self, "reward.")

    def reward(self, err_uv, target_uv, above, charge_uc, comfort_charge_uc, in_window=0.0):
        """The step reward (floats or arrays over patients), the formula of the env docstring.

        Args:
            err_uv: Mean |true ECAP - target| over the step's pulses (µV).
            target_uv: Target ECAP (µV).
            above: Fraction of the step's pulses above discomfort.
            charge_uc: Mean charge per phase per pulse (µC).
            comfort_charge_uc: Charge per phase at the comfort current (µC).
            in_window: Fraction of the step's pulses in the therapeutic window.
        """
        return reward_formula(
            self.tracking,
            self.discomfort,
            self.charge,
            err_uv,
            target_uv,
            above,
            charge_uc,
            comfort_charge_uc,
            self.window,
            in_window,
        )


def reward_formula(
    w_tracking,
    w_discomfort,
    w_charge,
    err_uv,
    target_uv,
    above,
    charge_uc,
    comfort_charge_uc,
    w_window,
    in_window,
):
    """:meth:`RewardWeights.reward` with the weights as arguments: the one copy of the formula.

    Plain arithmetic, so that NumPy arrays, Python floats and compiled code
    (:mod:`closedloop.envs.step`) share it. The window term is added only when its weight is
    not zero, so that the rewards of the other weights stay bit for bit what they were.
    """
    r = (
        -w_tracking * err_uv / target_uv
        - w_discomfort * above
        - w_charge * charge_uc / comfort_charge_uc
    )
    if w_window != 0.0:
        r = r + w_window * in_window
    return r


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """What an ECAP-tracking environment simulates and exposes."""

    scenario: str = param(
        "daily-living",
        "text",
        "scenario library id",
        doc="disturbance scenario (closedloop scenario)",
    )
    split: str = param(
        "train",
        "1",
        "cohort split",
        choices=("train", "validation", "test"),
        doc="cohort the patients are drawn from",
    )
    patient: str = param(
        "",
        "text",
        "empty: a new cohort patient each reset",
        doc="fixed patient id (named or cohort)",
    )
    rate_hz: float = param(50.0, "Hz", "2-1200 Hz tonic [M]", 1.0, 10_000.0, doc="pulse rate")
    pw_us: float = param(250.0, "µs", "20-1000 µs [M]", 20.0, 1000.0, doc="pulse width")
    pulses_per_step: int = param(
        1, "1", "one control period per pulse by default", 1, 10_000, doc="pulses per env step"
    )
    episode_s: float = param(
        180.0,
        "s",
        "a few minutes",
        0.0,
        86_400.0,
        lo_open=True,
        doc="simulated episode length (truncation)",
    )
    action_mode: str = param(
        "incremental",
        "1",
        "design choice",
        choices=ACTION_MODES,
        doc="how the normalised action sets the current",
    )
    max_delta_ma: float = param(
        0.5,
        "mA",
        "design choice",
        0.0,
        25.5,
        lo_open=True,
        doc="incremental mode: current change at action ±1",
    )
    max_log_step: float = param(
        0.2,
        "1",
        "design choice",
        0.0,
        5.0,
        lo_open=True,
        doc="multiplicative mode: log-current change at action ±1",
    )
    history: int = param(
        4,
        "1",
        "design choice",
        1,
        1000,
        doc="control steps of ECAP, detection and current observed",
    )
    observe_waveform: bool = param(
        False,
        "1",
        "variant",
        choices=(False, True),
        doc="append the last recorded sweep to the observation",
    )
    control_pw_rate: bool = param(
        False, "1", "variant", choices=(False, True), doc="actions also set pulse width and rate"
    )
    unscored_postures: str = param(
        "",
        "text",
        "protocol choice (docs/clinic_protocol.md)",
        doc="comma-separated postures the primary metrics leave "
        "out; scored separately as unscored_* (clinic: prone)",
    )
    unscored_after_s: float = param(
        0.0,
        "s",
        "the scenario's transition ramp (clinic: 1 s)",
        0.0,
        600.0,
        doc="time after leaving an unscored posture that stays unscored",
    )

    def __post_init__(self) -> None:
        validate(self, "env.")
        posture_codes(self.unscored_posture_names, "env.unscored_postures")

    @property
    def unscored_posture_names(self) -> tuple[str, ...]:
        """The postures of :attr:`unscored_postures`, as a tuple of names."""
        return tuple(p.strip() for p in self.unscored_postures.split(",") if p.strip())

    def requested_ma(self, a, current_ma, min_ma, max_ma):
        """Current asked for by normalised action ``a`` (floats or arrays over patients).

        Args:
            a: Action component 0, in [-1, 1].
            current_ma: Current delivered at the previous step (mA).
            min_ma: Clinician lower limit (mA).
            max_ma: Clinician upper limit (mA).
        """
        mode = ACTION_MODES.index(self.action_mode)
        if np.ndim(a) == 0:
            return requested_current(
                mode,
                float(a),
                float(current_ma),
                float(min_ma),
                float(max_ma),
                self.max_delta_ma,
                self.max_log_step,
            )
        out = np.empty(np.shape(a))
        _requested_many(
            mode,
            np.asarray(a, np.float64),
            np.asarray(current_ma, np.float64),
            np.asarray(min_ma, np.float64),
            np.asarray(max_ma, np.float64),
            self.max_delta_ma,
            self.max_log_step,
            out,
        )
        return out


@numba.njit(cache=True)
def requested_current(mode, a, current_ma, min_ma, max_ma, max_delta_ma, max_log_step):
    """The action mapping (the one copy of it): current (mA) asked for by action ``a``.

    Args:
        mode: Index of the action mode in :data:`ACTION_MODES`.
        a: Action component 0, in [-1, 1].
        current_ma: Current delivered at the previous step (mA).
        min_ma: Clinician lower limit (mA).
        max_ma: Clinician upper limit (mA).
        max_delta_ma: Incremental mode: change at ``a = ±1`` (mA).
        max_log_step: Multiplicative mode: log-current change at ``a = ±1``.
    """
    if mode == 0:
        return min_ma + 0.5 * (a + 1.0) * (max_ma - min_ma)
    if mode == 1:
        return current_ma + a * max_delta_ma
    return max(current_ma, 0.1) * math.exp(a * max_log_step)


@numba.njit(cache=True)
def _requested_many(mode, a, current_ma, min_ma, max_ma, max_delta_ma, max_log_step, out):
    for i in range(a.size):
        out[i] = requested_current(
            mode, a[i], current_ma[i], min_ma[i], max_ma[i], max_delta_ma, max_log_step
        )


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One registered task (an ``envs/*.toml`` file): id, description and its configuration.

    Not Gymnasium's ``EnvSpec`` (the registry entry, ``env.spec``): an env holds its task spec,
    with any ``gymnasium.make`` overrides applied, as ``env.unwrapped.spec_``.
    """

    env_id: str
    description: str
    config: EnvConfig
    reward: RewardWeights
    device: Any


def parse_spec(doc: Mapping[str, Any], where: str) -> TaskSpec:
    """Build an :class:`TaskSpec` from a parsed spec document."""
    unknown = sorted(set(doc) - {"id", "description", "env", "reward", "device"})
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in {where}; known: id, "
            "description, env, reward, device"
        )
    if not isinstance(doc.get("id"), str) or not doc["id"]:
        raise ConfigError(
            f"{where}: 'id' must be a non-empty string (e.g. 'closedloop/ECAPTracking-v0')"
        )
    return TaskSpec(
        doc["id"],
        str(doc.get("description", "")).strip(),
        from_dict(EnvConfig, doc.get("env", {}), f"{where} [env]"),
        from_dict(RewardWeights, doc.get("reward", {}), f"{where} [reward]"),
        from_dict(DeviceParams, doc.get("device", {}), f"{where} [device]"),
    )


def load_suite(folder: Path | None = None) -> dict[str, TaskSpec]:
    """Every spec in ``envs/`` (or ``folder``), by id."""
    folder = spec_dir("envs") if folder is None else folder
    suite: dict[str, TaskSpec] = {}
    for path in sorted(folder.glob("*.toml")):
        with open(path, "rb") as fh:
            spec = parse_spec(tomllib.load(fh), path.name)
        if spec.env_id in suite:
            raise ConfigError(f"{path.name}: duplicate id {spec.env_id!r}")
        suite[spec.env_id] = spec
    return suite


def with_overrides(spec: TaskSpec, overrides: Mapping[str, Any]) -> TaskSpec:
    """Apply ``gymnasium.make`` keyword overrides; unknown keys are errors naming the key."""
    env_keys = {f.name for f in dataclasses.fields(EnvConfig)}
    unknown = sorted(set(overrides) - env_keys - {"reward", "device"})
    if unknown:
        raise ConfigError(
            f"unknown keyword(s) {', '.join(unknown)} for {spec.env_id}; known: "
            f"{', '.join(sorted(env_keys | {'reward', 'device'}))}"
        )
    config = from_dict(
        EnvConfig,
        {
            **dataclasses.asdict(spec.config),
            **{k: v for k, v in overrides.items() if k in env_keys},
        },
        spec.env_id,
    )
    reward = from_dict(
        RewardWeights,
        {**dataclasses.asdict(spec.reward), **_table(overrides, "reward", RewardWeights)},
        spec.env_id,
    )
    device = from_dict(
        type(spec.device),
        {**dataclasses.asdict(spec.device), **_table(overrides, "device", type(spec.device))},
        spec.env_id,
    )
    return dataclasses.replace(spec, config=config, reward=reward, device=device)


def _table(overrides: Mapping[str, Any], key: str, cls: type) -> Mapping[str, Any]:
    """The ``reward`` or ``device`` override: a table of ``cls``'s fields, else ConfigError."""
    value = overrides.get(key, {})
    if not isinstance(value, Mapping):
        fields = ", ".join(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"{key}={value!r} must be a table (dict) with keys among {fields}")
    return value
