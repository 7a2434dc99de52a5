"""Fuzz cases of the Python entry points: envs, actions, controllers, specs, scenarios, patients.

Each ``*_cases`` function is a hypothesis strategy of :class:`fuzz_inputs.Case`; drawing a case
is cheap, running it (``case.call()``) does the work. Envs are built once per id and reused.
Files (spec, scenario, suite and patient files) are written under the run's temporary folder.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_inputs import Case, finite
from fuzz_values import (
    TEXT,
    bad_value,
    kwargs_text,
    not_a_table,
    not_finite,
    representable,
    show,
    toml_doc,
    wrong_types,
)
from hypothesis import strategies as st

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

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


def fields_of(cls: type) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(name, metadata, default) of every field of a dataclass."""
    return [(f.name, f.metadata, f.default) for f in dataclasses.fields(cls)]


def sane_step(out: Any) -> str | None:
    """What is wrong with a scalar or vector step result (NaN, a current out of range)."""
    obs, reward, _, _, info = out
    if not finite(obs) or not finite(reward):
        return f"NaN or inf in the observation or reward: reward={show(reward)}"
    current = np.asarray(info.get("current_ma", 0.0), dtype=np.float64)
    if (current < 0).any() or (current > HARDWARE_MAX_MA + 1e-9).any():
        return f"current_ma={show(current)} outside [0, {HARDWARE_MAX_MA}] mA"
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
        st.sampled_from(["env", "env", "env", "reward", "device", "loosen", "unknown", "table"])
    )
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
    return Case(
        "env.make",
        f"gym.make({env_id!r}, {kwargs_text(kwargs)})",
        functools.partial(_make_and_run, env_id, kwargs),
    )


@functools.cache
def _env(env_id: str) -> Any:
    import gymnasium as gym

    env = gym.make(env_id, **CHEAP)
    env.reset(seed=0)
    return env


def _reset(env_id: str, options: Any) -> Any:
    return _env(env_id).reset(seed=0, options=options)


def _unknown_patient(name: str) -> bool:
    import re

    from closedloop.patients import NAMED_PATIENTS

    return name not in NAMED_PATIENTS and not re.fullmatch(r"(train|validation|test)-\d+", name)


@st.composite
def reset_cases(draw: Any) -> Case:
    """``env.reset(options=bad)``: each option of a wrong type or value, unknown keys."""
    from closedloop.disturbances import list_scenarios

    env_id = draw(st.sampled_from(env_ids()))
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
        options = {draw(TEXT.filter(lambda s: s not in values)): 1}
    elif key == "not-a-dict":
        options = draw(
            st.one_of(
                TEXT,
                st.lists(st.integers(), min_size=1, max_size=2),
                st.integers().filter(bool),
                st.just((("patient", "default"),)),
            )
        )
    else:
        options = {key: draw(values[key])}
    return Case(
        "env.reset",
        f"gym.make({env_id!r}).reset(seed=0, options={show(options)})",
        functools.partial(_reset, env_id, options),
    )


def must_refuse_actions(shape: tuple[int, ...]) -> st.SearchStrategy:
    """Actions that can never be valid for an action of ``shape``."""
    size = int(np.prod(shape))
    bad_size = st.integers(0, 5).filter(lambda n: n != size and n != 1 and n != shape[-1])
    return st.one_of(
        TEXT,
        st.none(),
        st.dictionaries(TEXT, st.floats(-1, 1), min_size=1, max_size=2),
        st.just(b"\x00"),
        st.just(np.array(["a"] * size, dtype=object).reshape(shape)),
        st.just(np.array([None] * size, dtype=object).reshape(shape)),
        st.builds(
            lambda z: np.full(shape, z),
            st.complex_numbers(max_magnitude=1, allow_nan=False).filter(lambda z: z.imag != 0),
        ),
        st.builds(
            lambda v, i: _with(np.zeros(shape, np.float32), i, v),
            not_finite(),
            st.integers(0, size - 1),
        ),
        st.builds(lambda n: np.zeros(n, np.float32), bad_size),
        st.just(np.zeros((2, 2, 2), np.float32)),
        st.just([[0.0], [0.0, 1.0]]),
    )


def _with(a: np.ndarray, i: int, v: float) -> np.ndarray:
    a.reshape(-1)[i] = v
    return a


def either_actions(shape: tuple[int, ...]) -> st.SearchStrategy:
    """Unusual but valid-looking actions: accepted (clipped) or refused, never garbage."""
    floats = st.floats(-1e300, 1e300, allow_nan=False)
    return st.one_of(
        st.builds(lambda v: np.full(shape, v, np.float64), floats),
        st.builds(lambda v: np.full(shape, v, np.float32), st.floats(-1, 1, width=32)),
        st.builds(lambda v: np.full(shape, v, np.int64), st.integers(-(10**6), 10**6)),
        st.builds(lambda v: np.full(shape, v), st.booleans()),
        st.builds(lambda v: np.full(shape, v).tolist(), st.floats(-5, 5)),
        st.builds(lambda v: np.full(shape, v, object), st.floats(-1, 1)),
    )


def _step(get_env: Any, action: Any) -> Any:
    env = get_env()
    out = env.step(action)
    done = np.any(out[2]) or np.any(out[3])
    if done and not hasattr(env, "num_envs"):
        env.reset(seed=0)
    return out


@st.composite
def action_cases(draw: Any) -> Case:
    """``env.step(bad)`` on a scalar env of any id."""
    env_id = draw(st.sampled_from(env_ids()))
    shape = (3,) if "PulseShape" in env_id else (1,)
    refuse = draw(st.booleans())
    action = draw(must_refuse_actions(shape) if refuse else either_actions(shape))
    return Case(
        "env.step",
        f"gym.make({env_id!r}).step({show(action)})",
        functools.partial(_step, functools.partial(_env, env_id), action),
        refuse,
        sane_step,
    )


@functools.cache
def _vec(env_id: str) -> Any:
    from closedloop.envs.vector import ECAPVectorEnv

    env = ECAPVectorEnv(2, env_id, **CHEAP)
    env.reset(seed=0)
    return env


@st.composite
def vector_action_cases(draw: Any) -> Case:
    """``ECAPVectorEnv(2, id).step(bad)``."""
    env_id = draw(st.sampled_from(vector_ids()))
    refuse = draw(st.booleans())
    action = draw(must_refuse_actions((2, 1)) if refuse else either_actions((2, 1)))
    return Case(
        "vector.step",
        f"ECAPVectorEnv(2, {env_id!r}).step({show(action)})",
        functools.partial(_step, functools.partial(_vec, env_id), action),
        refuse,
        sane_step,
    )


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
        kwargs = draw(make_cases()).call.args[1]
    return Case(
        "vector.make",
        f"ECAPVectorEnv({show(n)}, {env_id!r}, {kwargs_text(kwargs)})",
        functools.partial(_vec_make_and_run, n, env_id, kwargs),
    )


# -- controllers -----------------------------------------------------------------------------


@functools.cache
def _agents() -> tuple[str, ...]:
    from closedloop.controllers import list_agents

    return tuple(list_agents())


def _write(tmp: Path, text: str, name: str, suffix: str = ".toml") -> Path:
    """Write ``text`` to a new sub-folder of ``tmp`` (named by its hash) and return the path."""
    folder = tmp / hashlib.sha1(text.encode()).hexdigest()[:12]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


@st.composite
def spec_docs(draw: Any) -> dict:
    """Controller spec documents with one bad key."""
    from closedloop.controllers import CONTROLLER_TYPES

    kind = draw(st.sampled_from(sorted(CONTROLLER_TYPES)))
    doc: dict[str, Any] = {"name": "fz", "description": "fuzz", "controller": kind, "params": {}}
    what = draw(
        st.sampled_from(
            [
                "params",
                "params",
                "name",
                "controller",
                "description",
                "tuning",
                "unknown",
                "params-type",
            ]
        )
    )
    if what == "params":
        name, meta, default = draw(st.sampled_from(fields_of(CONTROLLER_TYPES[kind].params_type)))
        doc["params"] = {name: draw(bad_value(meta, default))}
    elif what in ("name", "controller"):
        doc[what] = draw(
            st.one_of(
                wrong_types(),
                st.integers(),
                st.just(""),
                TEXT.filter(lambda s: s not in CONTROLLER_TYPES)
                if what == "controller"
                else st.just(""),
            )
        )
    elif what == "description":
        doc["description"] = draw(st.one_of(st.integers(), st.lists(TEXT, min_size=1)))
    elif what == "tuning":
        doc["tuning"] = draw(st.one_of(TEXT, st.integers(), st.lists(st.integers(), min_size=1)))
    elif what == "unknown":
        doc[draw(TEXT.filter(lambda s: s not in doc and s != "tuning"))] = 1
    else:
        doc["params"] = draw(not_a_table())
    return doc


def _load_agent(path: Path) -> Any:
    from closedloop.controllers import load_agent_spec

    return load_agent_spec("fz", folder=path.parent)


@st.composite
def controller_cases(draw: Any, tmp: Path) -> Case:
    """``make_controller(name, **bad)``, ``make_controller(bad spec)``, bad spec files."""
    from closedloop.controllers import load_agent_spec, make_controller

    what = draw(
        st.sampled_from(["override", "override", "dict", "file", "garbage-file", "not-a-spec"])
    )
    if what == "override":
        name = draw(st.sampled_from(_agents()))
        params = load_agent_spec(name).params
        field = draw(st.sampled_from(fields_of(type(params)) + [("zz_unknown", {}, 0.0)]))
        kwargs = {field[0]: draw(bad_value(field[1], field[2]))}
        return Case(
            "controller.make",
            f"make_controller({name!r}, {kwargs_text(kwargs)})",
            functools.partial(make_controller, name, **kwargs),
        )
    if what == "not-a-spec":
        spec = draw(
            st.one_of(st.none(), st.integers(), st.lists(st.integers(), min_size=1), st.just(1.5))
        )
        return Case(
            "controller.make",
            f"make_controller({show(spec)})",
            functools.partial(make_controller, spec),
        )
    if what == "garbage-file":
        text = draw(
            st.sampled_from(
                [
                    "name = = 1\n",
                    "[params\n",
                    "name = 'fz'\nname = 'x'\n",
                    "\x00\x01",
                    'name = "fz"\ncontroller = "pid"\nparams = 5\n',
                ]
            )
        )
        path = _write(tmp, text, "fz")
        return Case(
            "controller.make",
            f"load_agent_spec('fz', folder=<dir with {text!r}>)",
            functools.partial(_load_agent, path),
        )
    doc = draw(spec_docs())
    if what == "file" and representable(doc):
        text = toml_doc(doc)
        return Case(
            "controller.make",
            f"load_agent_spec('fz', folder=<dir with {text!r}>)",
            functools.partial(_load_agent, _write(tmp, text, "fz")),
        )
    return Case(
        "controller.make", f"make_controller({show(doc)})", functools.partial(make_controller, doc)
    )


@functools.cache
def _context() -> tuple[Any, int]:
    from closedloop.controllers import ControlContext

    env = _env("closedloop/ECAPTracking-v0").unwrapped
    ctx = ControlContext.from_env(env.spec_.config, env.calibration, env.target_uv)
    return ctx, 3 * ctx.history + 1


def _predict(name: str, obs: Any, reset: bool = True) -> Any:
    from closedloop.controllers import make_controller

    ctl = make_controller(name)
    if reset:
        ctl.reset(_context()[0])
    return ctl.predict(obs)


def sane_action(out: Any) -> str | None:
    """What is wrong with a controller's ``(action, state)``."""
    action = np.asarray(out[0])
    if action.dtype.kind not in "fi" or not np.isfinite(action).all():
        return f"action {show(out[0])} is not finite"
    if (np.abs(action) > 1.0).any():
        return f"action {show(out[0])} outside [-1, 1]"
    return None


@st.composite
def predict_cases(draw: Any) -> Case:
    """``controller.predict(bad observation)`` after ``reset(context)`` (or before it)."""
    name = draw(st.sampled_from(_agents()))
    n = 13  # 3 * history + 1 with the default history of 4
    refuse = draw(st.booleans())
    reset = True
    if refuse:
        obs = draw(
            st.one_of(
                TEXT,
                st.none(),
                st.dictionaries(TEXT, st.floats(), min_size=1, max_size=2),
                st.builds(np.zeros, st.integers(0, n - 1)),
                st.just(np.zeros((2, n))),
                st.just(np.array(["a"] * n, dtype=object)),
                st.just(np.full(n, 1 + 1j)),
                st.just(0.0),
            )
        )
        reset = draw(st.integers(0, 5)) > 0
        if not reset:
            obs = np.zeros(n)
    else:
        value = draw(st.one_of(not_finite(), st.floats(-1e300, 1e300)))
        index = draw(st.integers(0, n - 1))
        obs = np.full(n, 5.0)
        obs[index] = value
    text = (
        f"make_controller({name!r})" + (".reset(ctx)" if reset else "") + f".predict({show(obs)})"
    )
    return Case(
        "controller.predict",
        text,
        functools.partial(_predict, name, obs, reset),
        refuse,
        sane_action,
    )


# -- RL specs ----------------------------------------------------------------------------------


@functools.cache
def _ppo_doc() -> dict:
    from closedloop._specdirs import spec_dir

    with open(spec_dir("agents") / "rl" / "ppo.toml", "rb") as fh:
        return tomllib.load(fh)


HYPER_BAD = {
    "learning_rate": st.one_of(st.floats(max_value=0.0), not_finite(), TEXT, st.just([1e-3])),
    "n_steps": st.one_of(st.integers(max_value=0), st.floats(1.5, 99.5), TEXT),
    "batch_size": st.one_of(st.integers(max_value=0), st.just("abc"), st.floats(1.5, 9.5)),
    "n_epochs": st.one_of(st.integers(max_value=0), TEXT, st.just(2.5)),
    "gamma": st.one_of(
        st.floats(min_value=1.0, exclude_min=True),
        st.floats(max_value=0.0, exclude_max=True),
        not_finite(),
        TEXT,
    ),
    "gae_lambda": st.one_of(st.floats(min_value=1.0, exclude_min=True), not_finite(), TEXT),
    "clip_range": st.one_of(st.floats(max_value=0.0), not_finite(), st.just([0.2])),
    "ent_coef": st.one_of(not_finite(), st.just([0.0]), st.just({"a": 1})),
    "max_grad_norm": st.one_of(st.floats(max_value=0.0), not_finite(), TEXT),
    "policy_kwargs": st.one_of(
        TEXT,
        st.integers(),
        st.just({"net_arch": "x"}),
        st.just({"activation_fn": "nope"}),
        st.just({"zz": 1}),
        st.just({"net_arch": [-4]}),
    ),
}


@st.composite
def rl_docs(draw: Any) -> dict:
    """RL agent spec documents (``agents/rl/ppo.toml`` with one bad key)."""
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _ppo_doc().items()}
    hyper = {s: dict(t) for s, t in doc["hyperparams"].items()}
    doc["hyperparams"] = hyper
    what = draw(
        st.sampled_from(
            [
                "hyper",
                "hyper",
                "hyper",
                "algorithm",
                "policy",
                "n_envs",
                "normalize_obs",
                "section",
                "search",
                "unknown",
                "unknown-hp",
            ]
        )
    )
    if what == "hyper":
        key = draw(st.sampled_from(sorted(HYPER_BAD)))
        hyper["default"][key] = draw(HYPER_BAD[key])
    elif what in ("algorithm", "policy"):
        doc[what] = draw(st.one_of(TEXT, st.integers(), st.lists(TEXT, min_size=1)))
    elif what == "n_envs":
        doc["n_envs"] = draw(
            st.one_of(
                st.integers(max_value=0),
                st.floats(1.5, 7.5),
                TEXT,
                st.just([8]),
                st.integers(min_value=10**7),
            )
        )
    elif what == "normalize_obs":
        doc["normalize_obs"] = draw(st.one_of(TEXT, st.integers(2, 9), st.just([True])))
    elif what == "section":
        doc["hyperparams"] = (
            {draw(st.one_of(TEXT, st.just("CartPole-v1"))): {}}
            if draw(st.booleans())
            else draw(not_a_table())
        )
    elif what == "search":
        doc["search"] = draw(
            st.sampled_from(
                [
                    {"learning_rate": {"low": 1.0, "high": 0.0}},
                    {"zz": {"low": 0, "high": 1}},
                    {"n_steps": {"choices": []}},
                    {"n_steps": "abc"},
                    "abc",
                    {"learning_rate": {"low": "a", "high": 1.0}},
                    {"gamma": {"low": 0.9}},
                    {"learning_rate": {"low": -1.0, "high": 1.0, "log": True}},
                    {"n_steps": {"choices": [0, -1]}},
                ]
            )
        )
    elif what == "unknown":
        doc[draw(TEXT.filter(lambda s: s not in doc))] = 1
    else:
        hyper["default"][draw(TEXT.filter(lambda s: s not in HYPER_BAD))] = 1
    return doc


def _load_rl(path: Path) -> Any:
    from closedloop.training import load_rl_spec

    return load_rl_spec(str(path))


@st.composite
def rl_spec_cases(draw: Any, tmp: Path) -> Case:
    """``parse_rl_spec(bad)`` and ``load_rl_spec(<bad file>)``."""
    from closedloop.training.spec import parse_rl_spec

    doc = draw(rl_docs())
    if draw(st.booleans()) and representable(doc):
        path = _write(tmp, toml_doc(doc), "fz")
        return Case(
            "rl_spec", f"load_rl_spec(<file of {show(doc)}>)", functools.partial(_load_rl, path)
        )
    return Case("rl_spec", f"parse_rl_spec({show(doc)})", functools.partial(parse_rl_spec, doc))


def strategies(tmp: Path) -> dict[str, tuple[Any, int]]:
    """Entry point -> (strategy, quota of a full run) for the Python entry points."""
    from fuzz_files import file_strategies

    return {
        "env.make": (make_cases(), 300),
        "env.reset": (reset_cases(), 150),
        "env.step": (action_cases(), 250),
        "vector.make": (vector_make_cases(), 60),
        "vector.step": (vector_action_cases(), 150),
        "controller.make": (controller_cases(tmp / "agents"), 200),
        "controller.predict": (predict_cases(), 100),
        "rl_spec": (rl_spec_cases(tmp / "rl"), 150),
        **file_strategies(tmp),
    }
