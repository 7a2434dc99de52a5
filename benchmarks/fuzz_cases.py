"""Fuzz cases of the Python entry points: envs, actions, controllers, specs, scenarios, patients.

Each ``*_cases`` function is a hypothesis strategy of :class:`fuzz_inputs.Case`; drawing a case
is cheap, running it (``case.call()``) does the work. Envs are built once per id and reused.
Files (spec, scenario, suite and patient files) are written under the run's temporary folder.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_inputs import Case, finite
from fuzz_values import (
    TEXT,
    bad_value,
    either_actions,
    fields_of,
    kwargs_text,
    must_refuse_actions,
    not_a_table,
    not_finite,
    show,
    wrong_types,
)
from hypothesis import strategies as st

CHEAP = {"patient": "default", "episode_s": 0.2}
"""Overrides of every env a case builds: a fixed named patient, a 0.2 s episode."""
HARDWARE_MAX_MA = 25.5


# -- envs ------------------------------------------------------------------------------------


@functools.cache
def env_ids() -> tuple[str, ...]:
    """Every registered ``closedloop/`` id."""
    import gymnasium as gym

    import closedloop  # noqa: F401  (registers the suite)

    return tuple(sorted(k for k in gym.registry if k.startswith("closedloop/")))


@functools.cache
def vector_ids() -> tuple[str, ...]:
    """The ids the native vector env supports (no pulse-shape or waveform variants)."""
    from closedloop.envs.config import load_suite

    suite = load_suite()
    return tuple(
        i
        for i in env_ids()
        if i in suite
        and not suite[i].config.control_pw_rate
        and not suite[i].config.observe_waveform
    )


def sane_step(out: Any) -> str | None:
    """What is wrong with a scalar or vector step result (NaN, a current out of range)."""
    obs, reward, _, _, info = out
    if not finite(obs) or not finite(reward):
        return f"NaN or inf in the observation or reward: reward={show(reward)}"
    for key in ("current_ma", "pulse_current_ma"):  # the step's and each pulse's current
        current = np.asarray(info.get(key, 0.0), dtype=np.float64)
        if (current < 0).any() or (current > HARDWARE_MAX_MA + 1e-9).any():
            return f"{key}={show(current)} outside [0, {HARDWARE_MAX_MA}] mA"
    if not finite({k: v for k, v in info.items() if k != "device_limits"}):
        return "NaN or inf in info"
    return None


def _make_and_run(env_id: str, kwargs: Mapping[str, Any]) -> Any:
    import gymnasium as gym

    env = gym.make(env_id, **{**CHEAP, **kwargs})
    try:
        env.reset(seed=0)
        return env.step(np.zeros(env.action_space.shape, np.float32))
    finally:
        env.close()


@st.composite
def make_cases(draw: Any) -> Case:
    """``gymnasium.make(id, **bad)``: env fields, ``reward``, ``device``, unknown keys."""
    from closedloop.device import DeviceParams
    from closedloop.envs.config import EnvConfig, RewardWeights

    env_id = draw(st.sampled_from(env_ids()))
    kind = draw(
        st.sampled_from(
            ["env", "env", "env", "reward", "device", "loosen", "unknown", "table", "id"]
        )
    )
    if kind == "id":
        return _bad_id_case(draw)
    if kind == "env":
        name, meta, default = draw(st.sampled_from(fields_of(EnvConfig)))
        kwargs = {name: draw(bad_value(meta, default))}
    elif kind in ("reward", "device"):
        cls = RewardWeights if kind == "reward" else DeviceParams
        name, meta, default = draw(st.sampled_from(fields_of(cls)))
        kwargs = {kind: {name: draw(bad_value(meta, default))}}
    elif kind == "loosen":  # the hardware and tissue limits can only be tightened
        name, lo, hi = draw(
            st.sampled_from(
                [
                    ("max_current_ma", 25.5, 100.0),
                    ("charge_density_limit_uc_per_cm2", 30.0, 1000.0),
                    ("compliance_v", 40.0, 100.0),
                ]
            )
        )
        kwargs = {"device": {name: draw(st.floats(lo, hi, exclude_min=True))}}
    elif kind == "unknown":
        known = {f[0] for f in fields_of(EnvConfig)} | {"reward", "device", "render_mode"}
        kwargs = {draw(TEXT.filter(lambda s: s not in known)): 1.0}
    else:
        kwargs = {draw(st.sampled_from(["reward", "device"])): draw(not_a_table())}
    key, value = next(iter(kwargs.items()))
    inner = isinstance(value, dict) and kind in ("reward", "device", "loosen")
    return Case(
        "env.make",
        f"gym.make({env_id!r}, {kwargs_text(kwargs)})",
        functools.partial(_make_and_run, env_id, kwargs),
        names=(next(iter(value)),) if inner else (key,),
    )


def _direct(env_id: Any, render_mode: Any) -> Any:
    from closedloop.envs.ecap_env import ECAPTrackingEnv

    return ECAPTrackingEnv(env_id, render_mode=render_mode, **CHEAP)


def _bad_id_case(draw: Any) -> Case:
    """``ECAPTrackingEnv(bad id)`` or a bad ``render_mode``."""
    if draw(st.booleans()):
        env_id = draw(
            st.one_of(
                st.sampled_from(["CartPole-v1", "closedloop/Nope-v0", "", "ECAPTracking-v0"]),
                st.integers(),
                st.none(),
                st.just(["closedloop/ECAPTracking-v0"]),
            )
        )
        args, names = (env_id, None), ("env_id",)
    else:
        mode = draw(st.one_of(st.sampled_from(["human", "rgb", "ansi", ""]), st.integers(), TEXT))
        args, names = ("closedloop/ECAPTracking-v0", mode), ("render_mode",)
    return Case(
        "env.make",
        f"ECAPTrackingEnv({show(args[0])}, render_mode={show(args[1])})",
        functools.partial(_direct, *args),
        names=names,
    )


def _new_env(env_id: str, vector: bool) -> Any:
    """A cheap scalar env (``gym.make``) or a native vector env of two, not yet reset."""
    if vector:
        from closedloop.envs.vector import ECAPVectorEnv

        return ECAPVectorEnv(2, env_id, **CHEAP)
    import gymnasium as gym

    return gym.make(env_id, **CHEAP)


def _label(env_id: str, vector: bool) -> str:
    """How a case shows the env it calls."""
    return f"ECAPVectorEnv(2, {env_id!r})" if vector else f"gym.make({env_id!r})"


@functools.cache
def _env(env_id: str, vector: bool = False) -> Any:
    """The env the step cases share (reset once)."""
    env = _new_env(env_id, vector)
    env.reset(seed=0)
    return env


@functools.cache
def _env_for_resets(env_id: str, vector: bool) -> Any:
    return _new_env(env_id, vector)


def _reset(env_id: str, vector: bool, seed: Any, options: Any) -> Any:
    return _env_for_resets(env_id, vector).reset(seed=seed, options=options)


def _unknown_patient(name: str) -> bool:
    import re

    from closedloop.patients.patient import NAMED_PATIENTS

    return name not in NAMED_PATIENTS and not re.fullmatch(r"(train|validation|test)-\d+", name)


def bad_options(draw: Any) -> Any:
    """Reset options with one bad entry, or options that are not a table."""
    from closedloop.disturbances import list_scenarios

    key = draw(
        st.sampled_from(["patient", "split", "scenario", "target_uv", "unknown", "not-a-dict"])
    )
    values = {
        "patient": st.one_of(wrong_types(), st.integers(), TEXT.filter(_unknown_patient)),
        "split": st.one_of(
            wrong_types(), TEXT.filter(lambda s: s not in ("train", "validation", "test"))
        ),
        "scenario": st.one_of(
            wrong_types(),
            st.integers(),
            TEXT.filter(lambda s: s not in list_scenarios()),
            st.just("missing.toml"),
        ),
        "target_uv": st.one_of(
            wrong_types(),
            not_finite(),
            st.floats(max_value=0.0),
            st.floats(min_value=2000.0, exclude_min=True),
        ),
    }
    if key == "unknown":
        return {draw(TEXT.filter(lambda s: s not in values)): 1}
    if key == "not-a-dict":
        return draw(
            st.one_of(
                TEXT,
                st.lists(st.integers(), min_size=1, max_size=2),
                st.integers().filter(bool),
                st.just((("patient", "default"),)),
            )
        )
    return {key: draw(values[key])}


BAD_SEEDS = st.one_of(
    st.integers(max_value=-1),
    st.floats(0.5, 9.5).filter(lambda x: not x.is_integer()),
    not_finite(),
    TEXT,
    st.just({"a": 1}),
    st.just(1 + 2j),
)
"""Seeds no reset takes (a vector env also takes a list of one seed per sub-env)."""


@st.composite
def reset_cases(draw: Any) -> Case:
    """``reset(seed=..., options=...)`` of the scalar and the vector env: bad options or seed."""
    vector = draw(st.integers(0, 3)) == 0
    env_id = draw(st.sampled_from(vector_ids() if vector else env_ids()))
    seed, options = 0, None
    if draw(st.integers(0, 3)) == 0:
        bad = st.one_of(BAD_SEEDS, st.just([1]), st.just([0, -1])) if vector else BAD_SEEDS
        seed = draw(bad)
        names: tuple[str, ...] = ("seed",)
    else:
        options = bad_options(draw)
        names = tuple(map(str, options)) if isinstance(options, dict) else ("options",)
    return Case(
        "env.reset",
        f"{_label(env_id, vector)}.reset(seed={show(seed)}, options={show(options)})",
        functools.partial(_reset, env_id, vector, seed, options),
        names=names,
    )


def _step(get_env: Any, action: Any) -> Any:
    env = get_env()
    out = env.step(action)
    done = np.any(out[2]) or np.any(out[3])
    if done and not hasattr(env, "num_envs"):
        env.reset(seed=0)
    return out


def _step_case(draw: Any, vector: bool, env_id: str, shape: tuple[int, ...]) -> Case:
    """``step(bad)`` on the shared scalar env of ``env_id`` or its vector env of two."""
    refuse = draw(st.booleans())
    action = draw(must_refuse_actions(shape) if refuse else either_actions(shape))
    get_env = functools.partial(_env, env_id, True) if vector else functools.partial(_env, env_id)
    return Case(
        "vector.step" if vector else "env.step",
        f"{_label(env_id, vector)}.step({show(action)})",
        functools.partial(_step, get_env, action),
        refuse,
        sane_step,
        ("action",),
    )


@st.composite
def action_cases(draw: Any) -> Case:
    """``env.step(bad)`` on a scalar env of any id."""
    env_id = draw(st.sampled_from(env_ids()))
    return _step_case(draw, False, env_id, (3,) if "PulseShape" in env_id else (1,))


@st.composite
def vector_action_cases(draw: Any) -> Case:
    """``ECAPVectorEnv(2, id).step(bad)``."""
    return _step_case(draw, True, draw(st.sampled_from(vector_ids())), (2, 1))


def _vec_make_and_run(num_envs: Any, env_id: str, kwargs: Mapping[str, Any]) -> Any:
    from closedloop.envs.vector import ECAPVectorEnv

    env = ECAPVectorEnv(num_envs, env_id, **{**CHEAP, **kwargs})
    try:
        env.reset(seed=0)
        return env.step(np.zeros((env.num_envs, 1), np.float32))
    finally:
        env.close()


@st.composite
def vector_make_cases(draw: Any) -> Case:
    """``ECAPVectorEnv(bad num_envs)`` and bad overrides."""
    env_id = draw(st.sampled_from(vector_ids()))
    if draw(st.booleans()):
        n = draw(
            st.one_of(
                wrong_types(),
                st.integers(max_value=0),
                not_finite(),
                st.floats(1.1, 3.9).filter(lambda x: not x.is_integer()),
            )
        )
        kwargs: dict = {}
    else:
        n = 2
        kwargs = draw(make_cases().filter(lambda c: c.call.func is _make_and_run)).call.args[1]
    return Case(
        "vector.make",
        f"ECAPVectorEnv({show(n)}, {env_id!r}, {kwargs_text(kwargs)})",
        functools.partial(_vec_make_and_run, n, env_id, kwargs),
    )


def strategies(tmp: Path) -> dict[str, tuple[Any, int]]:
    """Entry point -> (strategy, quota of a full run) for the Python entry points."""
    from fuzz_files import file_strategies
    from fuzz_specs import controller_cases, predict_cases, rl_spec_cases

    return {
        "env.make": (make_cases(), 400),
        "env.reset": (reset_cases(), 150),
        "env.step": (action_cases(), 300),
        "vector.make": (vector_make_cases(), 60),
        "vector.step": (vector_action_cases(), 200),
        "controller.make": (controller_cases(tmp / "agents"), 250),
        "controller.predict": (predict_cases(), 100),
        "rl_spec": (rl_spec_cases(tmp / "rl"), 150),
        **file_strategies(tmp),
    }
