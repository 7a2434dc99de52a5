"""The one controller interface: SB3's ``predict`` plus ``reset(context)``.

Every controller (open loop, PID, the clinical ECAP loop, MPC, a trained SB3 policy) is played
the same way by :mod:`closedloop.evaluation`::

    controller.reset(context)          # once per episode, before the first step
    action, state = controller.predict(obs, state, episode_start, deterministic=True)

A controller never sees the environment. What it may know about the episode is the
:class:`ControlContext`: the patient's calibration record (target, comfort current, clinician
limits, fallback current), the control period and the layout of the observation and action.
It keeps its own simulated clock: step ``k`` happens at ``k * context.dt_s`` seconds.

Observation layout (``H = context.history``), newest first::

    obs[0:H]     measured ECAP per step (µV)
    obs[H:2H]    fraction of the step's pulses with a detected ECAP
    obs[2H:3H]   delivered current (mA)
    obs[3H]      target ECAP (µV)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numba
import numpy as np

from closedloop._config import ConfigError, as_real_array, check_value, short_repr
from closedloop.envs.config import ACTION_MODES

_POSITIVE = {"lo": 0.0, "lo_open": True}
_CONTEXT_CHECKS = (
    ("target_uv", {**_POSITIVE, "unit": "µV"}, "real"),
    ("dt_s", {**_POSITIVE, "unit": "s"}, "real"),
    ("history", {"lo": 1, "hi": 1000, "unit": "1"}, "int"),
    ("action_mode", {"choices": ACTION_MODES}, None),
    ("max_delta_ma", {**_POSITIVE, "unit": "mA"}, "real"),
    ("max_log_step", {**_POSITIVE, "unit": "1"}, "real"),
    ("n_actions", {"choices": (1, 3)}, None),
)
"""The checked fields of :class:`ControlContext`: name, valid range, kind."""


@dataclasses.dataclass(frozen=True)
class ControlContext:
    """What a controller is told about its episode (never the env itself).

    Attributes:
        calibration: The patient's :class:`~closedloop.patients.calibration.CalibrationRecord`.
        target_uv: ECAP target of the episode (µV).
        dt_s: Control period: simulated time between two ``predict`` calls (s).
        history: Steps of history ``H`` in the observation.
        action_mode: ``absolute``, ``incremental`` or ``multiplicative`` (see the env docs).
        max_delta_ma: Incremental mode: current change at action ±1 (mA).
        max_log_step: Multiplicative mode: log-current change at action ±1.
        n_actions: Length of the action vector (1, or 3 when pulse width and rate are controlled).
    """

    calibration: Any
    target_uv: float
    dt_s: float
    history: int = 4
    action_mode: str = "incremental"
    max_delta_ma: float = 0.5
    max_log_step: float = 0.2
    n_actions: int = 1

    def __post_init__(self) -> None:
        for name, meta, kind in _CONTEXT_CHECKS:
            check_value(f"context.{name}", getattr(self, name), meta, kind)

    @classmethod
    def from_env(cls, env_config: Any, calibration: Any, target_uv: float) -> ControlContext:
        """The context of an episode of an env with :class:`~closedloop.envs.config.EnvConfig`."""
        return cls(
            calibration=calibration,
            target_uv=float(target_uv),
            dt_s=env_config.pulses_per_step / env_config.rate_hz,
            history=env_config.history,
            action_mode=env_config.action_mode,
            max_delta_ma=env_config.max_delta_ma,
            max_log_step=env_config.max_log_step,
            n_actions=3 if env_config.control_pw_rate else 1,
        )

    def action_for(self, current_ma: float, previous_ma: float) -> float:
        """Normalised action that asks for ``current_ma`` after ``previous_ma``, clipped to ±1.

        The inverse of :meth:`closedloop.envs.config.EnvConfig.requested_ma`
        (:func:`normalised_action` with this context's mode and limits).
        """
        cal = self.calibration
        return normalised_action(
            ACTION_MODES.index(self.action_mode),
            float(current_ma),
            float(previous_ma),
            float(cal.min_ma),
            float(cal.max_ma),
            float(self.max_delta_ma),
            float(self.max_log_step),
        )


@numba.njit(cache=True, inline="always")
def py_max(a, b):
    """Python's ``max(a, b)`` on floats: ``a`` unless ``b > a`` (NaN and -0.0 alike)."""
    return b if b > a else a


@numba.njit(cache=True, inline="always")
def py_min(a, b):
    """Python's ``min(a, b)`` on floats: ``a`` unless ``b < a`` (NaN and -0.0 alike)."""
    return b if b < a else a


@numba.njit(cache=True)
def normalised_action(mode, current_ma, previous_ma, min_ma, max_ma, max_delta_ma, max_log_step):
    """The one copy of the inverse action mapping: the action asking for ``current_ma``.

    Args:
        mode: Index of the action mode in :data:`ACTION_MODES`.
        current_ma: Current to ask for (mA).
        previous_ma: Current delivered at the previous step (mA).
        min_ma: Clinician lower limit (mA).
        max_ma: Clinician upper limit (mA).
        max_delta_ma: Incremental mode: change at action ±1 (mA).
        max_log_step: Multiplicative mode: log-current change at action ±1.

    Returns:
        Action component 0, clipped to [-1, 1].
    """
    if mode == 0:
        a = 2.0 * (current_ma - min_ma) / py_max(max_ma - min_ma, 1e-9) - 1.0
    elif mode == 1:
        a = (current_ma - previous_ma) / max_delta_ma
    else:
        a = math.log(py_max(current_ma, 1e-6) / py_max(previous_ma, 0.1)) / max_log_step
    return py_min(py_max(a, -1.0), 1.0)


@dataclasses.dataclass(frozen=True)
class Observation:
    """The parts of one observation vector (see the module docstring), newest first."""

    ecap_uv: np.ndarray
    detected: np.ndarray
    current_ma: np.ndarray
    target_uv: float

    @classmethod
    def parse(cls, obs: Any, history: int) -> Observation:
        """Split an observation vector of an env with ``history`` steps."""
        x = as_real_array("observation", obs)
        if x.ndim != 1 or x.size < 3 * history + 1:
            raise ConfigError(
                f"observation has shape {x.shape}; expected (>= {3 * history + 1},) "
                f"for history={history}"
            )
        if not np.isfinite(x).all():
            raise ConfigError(
                f"observation={short_repr(x.tolist())} must be finite (an env's "
                "observation always is)"
            )
        h = history
        return cls(x[:h], x[h : 2 * h], x[2 * h : 3 * h], float(x[3 * h]))


CONTROLLER_TYPES: dict[str, type] = {}
"""Controller type name -> class: every subclass of :class:`Controller` that defines its own
``name`` and ``params_type`` registers itself here (:meth:`Controller.__init_subclass__`); a
spec's ``controller = "<name>"`` then builds it."""


class Controller:
    """Base class: subclasses implement :meth:`current_ma` (or override :meth:`predict`).

    The base class keeps the simulated clock (:attr:`t_s`), parses observations, and turns the
    requested current into the env's normalised action. Single observations only: a controller
    that plays many episodes at once is a :class:`~closedloop.controllers.batch.BatchController`.

    A subclass that sets its own ``name`` and ``params_type`` registers itself in
    :data:`CONTROLLER_TYPES`: a module under ``closedloop/controllers/`` and a spec in
    ``agents/`` are all a new built-in controller needs.

    Args:
        params: For a controller with a :attr:`params_type`, an instance of it (its defaults
            if None); kept as :attr:`params`.
    """

    name = "controller"
    params_type: type | None = None
    """The frozen parameter dataclass of a parametrised controller (None: no parameters)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and cls.__dict__.get("params_type") is not None:
            other = CONTROLLER_TYPES.get(cls.name)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise ConfigError(
                    f"controller type name {cls.name!r} of {cls.__qualname__} is taken by "
                    f"{other.__module__}.{other.__qualname__}"
                )
            CONTROLLER_TYPES[cls.name] = cls

    def __init__(self, params: Any = None) -> None:
        if self.params_type is not None:
            if params is None:
                params = self.params_type()
            elif not isinstance(params, self.params_type):
                raise ConfigError(
                    f"params={type(params).__name__} is not valid for "
                    f"{type(self).__name__}; expected {self.params_type.__name__}"
                )
            self.params = params
        self.context: ControlContext | None = None
        self._zero_clock(1)

    def reset(self, context: ControlContext) -> None:
        """Start an episode: remember the context, zero the clock and the internal state."""
        if not isinstance(context, ControlContext):
            raise ConfigError(
                f"context={type(context).__name__} is not valid for "
                f"{type(self).__name__}.reset; expected a ControlContext"
            )
        self.context = context
        self._zero_clock(1)

    def _zero_clock(self, n_episodes: int) -> None:
        """Zero the simulated clock (:attr:`t_s`, :attr:`steps`) of ``n_episodes`` episodes."""
        self.t_s = 0.0
        self.steps = 0

    def _tick(self) -> None:
        """Advance the clock by one control period after a ``predict``."""
        self.t_s += self.context.dt_s
        self.steps += 1

    def current_ma(self, obs: Observation) -> float:
        """The current (mA) to request for the next control period."""
        raise NotImplementedError

    def predict(
        self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """SB3-style ``predict``: the normalised action for ``obs``, and ``state`` unchanged."""
        ctx = self.context
        if ctx is None:
            raise ConfigError(f"{type(self).__name__}.predict called before reset(context)")
        o = Observation.parse(obs, ctx.history)
        want = float(self.current_ma(o))
        if not math.isfinite(want):
            raise ConfigError(f"{type(self).__name__} produced current_ma={want!r}; must be finite")
        a = np.zeros(ctx.n_actions, np.float32)
        a[0] = ctx.action_for(want, float(o.current_ma[0]))
        self._tick()
        return a, state


DEFAULT_SLOPE_UV_PER_MA = 15.0
"""Growth-curve slope assumed when the calibration has none (µV/mA; Pilitsis 2021 example [C])."""
HARDWARE_MAX_MA = 25.5
"""Largest current of the output stage (mA; shared/domain.md §1 [M])."""


@dataclasses.dataclass(frozen=True)
class GrowthPrior:
    """The reference posture's growth curve ``ECAP = slope (I - threshold)`` from calibration.

    Attributes:
        threshold_ma: ECAP threshold (mA).
        slope_uv_per_ma: Growth-curve slope (µV/mA).
        scale_uv: ``slope * threshold`` (µV). Across postures slope and threshold change together
            (cord closer: lower threshold, steeper slope) with their product nearly constant
            (within about 10 % across the calibration postures of the training cohort), so the
            growth curve is ``ECAP = scale (I / threshold - 1)`` with one posture-dependent
            unknown, the threshold.
    """

    threshold_ma: float
    slope_uv_per_ma: float

    @property
    def scale_uv(self) -> float:
        """``slope * threshold`` (µV)."""
        return self.slope_uv_per_ma * self.threshold_ma

    @classmethod
    def from_calibration(cls, calibration: Any) -> GrowthPrior:
        """The reference posture's fit; other calibrated postures or the comfort point if NaN."""
        rows = [calibration.reference, *calibration.postures]
        for pc in rows:
            th, slope = pc.ecap_threshold_ma, pc.slope_uv_per_ma
            if math.isfinite(th) and math.isfinite(slope) and slope > 0.0 and th > 0.0:
                return cls(float(th), float(slope))
        slope = DEFAULT_SLOPE_UV_PER_MA
        th = max(calibration.comfort_ma - calibration.target_uv / slope, 0.1)
        return cls(float(th), slope)


def current_limits(context: ControlContext, clinician: bool = True) -> tuple[float, float]:
    """Current range a controller may request (mA): the clinician limits, or the hardware range."""
    if not clinician:
        return 0.0, HARDWARE_MAX_MA
    cal = context.calibration
    return float(cal.min_ma), float(min(cal.max_ma, HARDWARE_MAX_MA))


class SB3Policy(Controller):
    """Any object with SB3's ``predict`` (e.g. a loaded ``PPO``) behind the controller interface.

    ``reset(context)`` only restarts the clock; ``predict`` passes the observation to the wrapped
    policy unchanged and returns its action (and recurrent state).

    Args:
        policy: An object with ``predict(obs, state, episode_start, deterministic)``.
    """

    name = "sb3"

    def __init__(self, policy: Any) -> None:
        super().__init__()
        if not callable(getattr(policy, "predict", None)):
            raise ConfigError(
                f"policy={type(policy).__name__} has no predict(obs, state, "
                "episode_start, deterministic) method"
            )
        self.policy = policy

    def predict(
        self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[np.ndarray, Any]:
        """The wrapped policy's action for ``obs``; advances the clock by one control period."""
        if self.context is None:
            raise ConfigError("SB3Policy.predict called before reset(context)")
        action, state = self.policy.predict(
            obs, state=state, episode_start=episode_start, deterministic=deterministic
        )
        self.t_s += self.context.dt_s
        self.steps += 1
        return np.asarray(action, dtype=np.float32), state
