"""Many episodes of one controller at once, the per-episode state in arrays (an opt-in protocol).

A :class:`BatchController` is a :class:`~closedloop.controllers.base.Controller` whose control
law is a numba kernel over one row of per-episode arrays. It plays one episode through the
ordinary interface (``reset(context)`` then ``predict(obs)``: the law on row 0 of one-row arrays)
or N episodes at once::

    ctl.reset_many(contexts)                      # one ControlContext per episode
    actions = ctl.predict_many(obs)               # obs (N, D) -> actions (N, n_actions), float32
    actions = ctl.predict_many(obs[rows], rows)   # only the episodes ``rows`` (still running)

``predict_many`` loops the same row kernel over the rows and maps each requested current to an
action with the kernel ``predict`` uses (:func:`~closedloop.controllers.base.normalised_action`),
so every episode's actions equal a one-episode controller's bit for bit: the same float64
operations in the same order (Python's two-argument ``min`` and ``max`` are
:func:`~closedloop.controllers.base.py_min` and :func:`~closedloop.controllers.base.py_max`,
``math.exp`` and ``math.log`` call the same C library). :attr:`BatchController.batch_ready` is
False for a subclass overriding ``predict``, ``reset``, ``current_ma`` or ``_tick`` (its one-
episode path may not follow the kernel): :func:`~closedloop.evaluation.batch_runner.run_episodes`
then plays one instance per episode, as it does for any controller without ``predict_many``.

A subclass sets ``kernels = (law, law_many)``, two numba functions::

    law(p, const, state, row, step, t_s, dt_s, ecap_uv, detected, current_ma, target_uv) -> mA
    law_many(p, const, state, rows, steps, t_s, dt_s, ecap_uv, detected, current_ma, target_uv,
             out)                                 # out[i] = law(..., rows[i], steps[rows[i]], ...)

with ``p`` its parameters (:meth:`BatchController._law_params`), ``const`` (N, C) and ``state``
(N, S) its per-episode constants and state (:meth:`BatchController._episode_arrays`), ``step``
and ``t_s`` the episode's steps and simulated time before this one, and the newest measured ECAP
(µV), detected fraction, delivered current (mA) and target (µV) of the observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from closedloop._config import ConfigError, as_real_array, short_repr
from closedloop.controllers.base import (
    ACTION_MODES,
    ControlContext,
    Controller,
    Observation,
    normalised_action,
)

SHARED_FIELDS = ("dt_s", "history", "action_mode", "max_delta_ma", "max_log_step", "n_actions")
"""Context fields every episode of a batch shares (the env's control settings)."""
_ONE_EPISODE_METHODS = ("predict", "reset", "current_ma", "_tick")


@numba.njit(cache=True)
def _actions_many(
    mode, want_ma, previous_ma, rows, min_ma, max_ma, max_delta_ma, max_log_step, out
):
    """``out[i]``: :func:`normalised_action` of ``want_ma[i]`` for episode ``rows[i]``."""
    for i in range(rows.size):
        r = rows[i]
        out[i] = normalised_action(
            mode, want_ma[i], previous_ma[i], min_ma[r], max_ma[r], max_delta_ma, max_log_step
        )


def check_contexts(contexts: Any, where: str) -> list[ControlContext]:
    """``contexts`` as a non-empty list of contexts sharing :data:`SHARED_FIELDS`."""
    if isinstance(contexts, (str, bytes)) or not isinstance(contexts, Sequence) or not contexts:
        raise ConfigError(
            f"{where}: contexts={short_repr(contexts)} must be a non-empty list of "
            "ControlContext (one per episode)"
        )
    for i, ctx in enumerate(contexts):
        if not isinstance(ctx, ControlContext):
            raise ConfigError(
                f"{where}: contexts[{i}]={type(ctx).__name__} is not valid; "
                "expected a ControlContext"
            )
        for name in SHARED_FIELDS:
            if getattr(ctx, name) != getattr(contexts[0], name):
                raise ConfigError(
                    f"{where}: contexts[{i}].{name}={getattr(ctx, name)!r} differs from "
                    f"contexts[0].{name}={getattr(contexts[0], name)!r}; the episodes of one "
                    f"batch share the env's control settings ({', '.join(SHARED_FIELDS)})"
                )
    return list(contexts)


def _parse_rows(obs: Any, history: int) -> np.ndarray:
    """Observations (M, D) as float64; ConfigError on a bad shape or a non-finite value."""
    x = as_real_array("obs", obs)
    if x.ndim != 2 or x.shape[1] < 3 * history + 1:
        raise ConfigError(
            f"obs has shape {x.shape}; expected (episodes, >= {3 * history + 1}) "
            f"for history={history}"
        )
    if not np.isfinite(x).all():
        raise ConfigError(
            f"obs={short_repr(x.tolist())} must be finite (an env's observation always is)"
        )
    return x


def _check_rows(rows: Any, n_episodes: int, n_obs: int) -> np.ndarray:
    """``rows`` as distinct int64 episode indices, one per observation row."""
    if rows is None:
        if n_obs != n_episodes:
            raise ConfigError(
                f"obs has {n_obs} rows; expected one per episode ({n_episodes}) when rows is None"
            )
        return np.arange(n_episodes)
    r = np.asarray(rows)
    if r.dtype.kind not in "iu" or r.shape != (n_obs,):
        raise ConfigError(
            f"rows={short_repr(rows)} must be {n_obs} integer episode indices "
            "(one per observation row)"
        )
    if n_obs and (r.min() < 0 or r.max() >= n_episodes or np.unique(r).size != n_obs):
        raise ConfigError(
            f"rows={short_repr(rows)} must be distinct episode indices in [0, {n_episodes - 1}]"
        )
    return r.astype(np.int64, copy=False)


class BatchController(Controller):
    """A controller whose law is a row kernel over per-episode arrays (see the module docstring).

    Attributes:
        contexts: The episodes' contexts since :meth:`reset_many` (:attr:`context` is the first).
    """

    kernels: tuple | None = None
    """``(law, law_many)`` numba kernels of a concrete subclass (None: not batched)."""

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        self.contexts: tuple[ControlContext, ...] = ()

    def _law_params(self) -> np.ndarray:
        """The parameters as the float64 array ``p`` of the kernels."""
        raise NotImplementedError

    def _episode_arrays(self, contexts: list[ControlContext]) -> tuple[np.ndarray, np.ndarray]:
        """``(const, state)``: float64 (N, C) per-episode constants and (N, S) initial state."""
        raise NotImplementedError

    def _zero_clock(self, n_episodes: int) -> None:
        self._t_rows_s = np.zeros(n_episodes)
        self._step_rows = np.zeros(n_episodes, np.int64)

    def _tick(self) -> None:
        self._t_rows_s[0] += self.context.dt_s
        self._step_rows[0] += 1

    @property
    def t_s(self) -> float | np.ndarray:
        """Simulated time (s) before the next step: a float, or an array over the episodes."""
        return float(self._t_rows_s[0]) if self._t_rows_s.size == 1 else self._t_rows_s.copy()

    @property
    def steps(self) -> int | np.ndarray:
        """Steps played: an int, or an int array over the episodes of :meth:`reset_many`."""
        return int(self._step_rows[0]) if self._step_rows.size == 1 else self._step_rows.copy()

    @property
    def batch_ready(self) -> bool:
        """Whether :meth:`predict_many` plays this class's one-episode law (see the module)."""
        cls = type(self)
        owner = next(c for c in cls.__mro__ if "kernels" in vars(c))
        return owner.kernels is not None and all(
            getattr(cls, name) is getattr(owner, name) for name in _ONE_EPISODE_METHODS
        )

    def reset(self, context: ControlContext) -> None:
        """Start one episode (:meth:`reset_many` with one context)."""
        if not isinstance(context, ControlContext):
            raise ConfigError(
                f"context={type(context).__name__} is not valid for "
                f"{type(self).__name__}.reset; expected a ControlContext"
            )
        self.reset_many([context])

    def reset_many(self, contexts: Sequence[ControlContext]) -> None:
        """Start one episode per context; they must share :data:`SHARED_FIELDS`.

        Raises:
            ConfigError: If ``contexts`` is empty, holds anything but contexts, or its contexts
                differ in a shared field (the message names it).
        """
        contexts = check_contexts(contexts, f"{type(self).__name__}.reset_many")
        self.contexts, self.context = tuple(contexts), contexts[0]
        self._ready = self.batch_ready  # the class's methods, checked once
        self._zero_clock(len(contexts))
        self._p = np.asarray(self._law_params(), np.float64)
        self._const, self._state = self._episode_arrays(contexts)
        self._min_ma = np.array([float(c.calibration.min_ma) for c in contexts])
        self._max_ma = np.array([float(c.calibration.max_ma) for c in contexts])

    def current_ma(self, obs: Observation) -> float:
        """The law on the one episode of :meth:`reset` (mA)."""
        if self._step_rows.size != 1:
            raise ConfigError(
                f"{type(self).__name__} was reset with {self._step_rows.size} "
                "episodes; predict plays one (use predict_many)"
            )
        return self.kernels[0](
            self._p,
            self._const,
            self._state,
            0,
            int(self._step_rows[0]),
            float(self._t_rows_s[0]),
            self.context.dt_s,
            float(obs.ecap_uv[0]),
            float(obs.detected[0]),
            float(obs.current_ma[0]),
            float(obs.target_uv),
        )

    def reset_row(self, row: int, context: ControlContext) -> None:
        """Start a new episode in row ``row`` of :meth:`reset_many`, the other rows untouched.

        For a training env whose sub-environments restart one at a time. ``context`` must share
        the batch's control settings (:data:`SHARED_FIELDS`).
        """
        if self.context is None:
            raise ConfigError(f"{type(self).__name__}.reset_row called before reset_many")
        row = int(_check_rows(np.array([row]), self._step_rows.size, 1)[0])
        contexts = list(self.contexts)
        contexts[row] = context
        check_contexts(contexts, f"{type(self).__name__}.reset_row")
        const, state = self._episode_arrays([context])
        self._const[row], self._state[row] = const[0], state[0]
        self._min_ma[row] = float(context.calibration.min_ma)
        self._max_ma[row] = float(context.calibration.max_ma)
        self._t_rows_s[row], self._step_rows[row] = 0.0, 0
        self.contexts = tuple(contexts)
        self.context = contexts[0]

    def predict_many(self, obs: Any, rows: Any = None) -> np.ndarray:
        """Actions for the episodes ``rows`` (all if None) from their observations.

        Args:
            obs: Observations (M, D), row ``i`` that of episode ``rows[i]``, laid out as in
                :mod:`closedloop.controllers.base`.
            rows: M distinct episode indices of :meth:`reset_many`, or None (M = N, in order).
                Each episode's clock advances by one control period.

        Returns:
            Actions (M, n_actions), float32, equal to each episode's ``predict`` bit for bit.

        Raises:
            ConfigError: Before :meth:`reset_many`, for a subclass that is not
                :attr:`batch_ready`, on a bad shape of ``obs`` or ``rows``, a non-finite
                observation, or a non-finite requested current.
        """
        want, previous, r = self._currents(obs, rows)
        return self.actions_for(want, previous, r)

    def currents_many(self, obs: Any, rows: Any = None) -> np.ndarray:
        """The currents (mA, float64) :meth:`predict_many` would ask for; the clocks advance.

        The same arguments and errors as :meth:`predict_many`; :meth:`actions_for` turns the
        currents (or currents changed by a residual policy) into the env's actions.
        """
        return self._currents(obs, rows)[0]

    def _currents(self, obs: Any, rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(wanted currents, delivered currents, rows)`` of a step; the clocks advance."""
        ctx, name = self.context, type(self).__name__
        if ctx is None:
            raise ConfigError(f"{name}.predict_many called before reset_many(contexts)")
        if not self._ready:
            raise ConfigError(
                f"{name} overrides one of {', '.join(_ONE_EPISODE_METHODS)}; "
                "play it one episode at a time with predict"
            )
        h = ctx.history
        x = _parse_rows(obs, h)
        r = _check_rows(rows, self._step_rows.size, x.shape[0])
        ecap, current = x[:, 0].copy(), x[:, 2 * h].copy()
        want = np.empty(r.size)
        self.kernels[1](
            self._p,
            self._const,
            self._state,
            r,
            self._step_rows,
            self._t_rows_s,
            ctx.dt_s,
            ecap,
            x[:, h].copy(),
            current,
            x[:, 3 * h].copy(),
            want,
        )
        if not np.isfinite(want).all():
            raise ConfigError(
                f"{name} produced current_ma={short_repr(want.tolist())}; must be finite"
            )
        if rows is None:
            self._t_rows_s += ctx.dt_s
            self._step_rows += 1
        else:
            self._t_rows_s[r] += ctx.dt_s
            self._step_rows[r] += 1
        return want, current, r

    def actions_for(self, want_ma: Any, previous_ma: Any, rows: Any) -> np.ndarray:
        """The env's actions (M, n_actions), float32, that ask for currents ``want_ma``.

        Args:
            want_ma: Currents to ask for (mA), one per row.
            previous_ma: Currents delivered at the previous step (mA), one per row.
            rows: The episodes (indices of :meth:`reset_many`) of the rows.
        """
        ctx = self.context
        r = np.asarray(rows, np.int64)
        a = np.empty(r.size)
        _actions_many(
            ACTION_MODES.index(ctx.action_mode),
            np.asarray(want_ma, np.float64),
            np.asarray(previous_ma, np.float64),
            r,
            self._min_ma,
            self._max_ma,
            float(ctx.max_delta_ma),
            float(ctx.max_log_step),
            a,
        )
        actions = np.zeros((r.size, ctx.n_actions), np.float32)
        actions[:, 0] = a
        return actions
