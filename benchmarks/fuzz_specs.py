"""Fuzz cases of controllers and agents: controller specs and overrides, ``predict``, RL specs.

Each ``*_cases`` function is a hypothesis strategy of :class:`fuzz_inputs.Case` (see
``fuzz_cases``); spec files are written under the run's temporary folder.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_cases import _env
from fuzz_inputs import Case
from fuzz_values import (
    TEXT,
    bad_value,
    fields_of,
    kwargs_text,
    not_a_table,
    not_finite,
    representable,
    show,
    toml_doc,
    write_file,
    wrong_types,
)
from hypothesis import strategies as st

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# -- controllers -----------------------------------------------------------------------------


@functools.cache
def _agents() -> tuple[str, ...]:
    from closedloop.controllers import list_agents

    return tuple(list_agents())


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
                wrong_types(text_ok=True),
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


GARBAGE_SPECS = (
    "name = = 1\n",
    "[params\n",
    "name = 'fz'\nname = 'x'\n",
    "\x00\x01",
    'name = "fz"\ncontroller = "pid"\nparams = 5\n',
)
"""Spec files that are not valid TOML or not a spec."""


def _override_case(draw: Any) -> Case:
    """``make_controller(name, **{parameter: bad})``."""
    from closedloop.controllers import load_agent_spec, make_controller

    name = draw(st.sampled_from(_agents()))
    params = load_agent_spec(name).params
    field = draw(st.sampled_from(fields_of(type(params)) + [("zz_unknown", {}, 0.0)]))
    kwargs = {field[0]: draw(bad_value(field[1], field[2]))}
    return Case(
        "controller.make",
        f"make_controller({name!r}, {kwargs_text(kwargs)})",
        functools.partial(make_controller, name, **kwargs),
        names=(field[0],),
    )


def _spec_case(draw: Any, tmp: Path, as_file: bool) -> Case:
    """``make_controller(<spec with one bad entry>)``, or the spec as a file."""
    from closedloop.controllers import make_controller

    doc = draw(spec_docs())
    base = {"name": "fz", "description": "fuzz", "params": {}}
    keys = tuple(str(k) for k, v in doc.items() if k != "controller" and base.get(k) != v)
    kind = show(doc.get("controller"))
    change = ", ".join(f"{k}={show(doc[k])}" for k in keys) or f"controller={kind}"
    spec = f"<spec of a {kind} controller with {change}>"
    if isinstance(doc.get("params"), dict) and doc["params"]:
        keys = (*map(str, doc["params"]), *keys)  # a bad parameter is named by its own name
    if as_file and representable(doc):
        path = write_file(tmp, toml_doc(doc), "fz")
        return Case(
            "controller.make",
            f"load_agent_spec('fz', folder=<dir with a file of {spec}>)",
            functools.partial(_load_agent, path),
            names=keys or ("controller",),
        )
    return Case(
        "controller.make",
        f"make_controller({spec})",
        functools.partial(make_controller, doc),
        names=keys or ("controller",),
    )


@st.composite
def controller_cases(draw: Any, tmp: Path) -> Case:
    """``make_controller(name, **bad)``, ``make_controller(bad spec)``, bad spec files."""
    from closedloop.controllers import make_controller

    what = draw(st.sampled_from(["override", "override", "dict", "file", "garbage", "not-a-spec"]))
    if what == "override":
        return _override_case(draw)
    if what == "not-a-spec":
        spec = draw(
            st.one_of(st.none(), st.integers(), st.lists(st.integers(), min_size=1), st.just(1.5))
        )
        return Case(
            "controller.make",
            f"make_controller({show(spec)})",
            functools.partial(make_controller, spec),
        )
    if what == "garbage":
        text = draw(st.sampled_from(GARBAGE_SPECS))
        return Case(
            "controller.make",
            f"load_agent_spec('fz', folder=<dir with {text!r}>)",
            functools.partial(_load_agent, write_file(tmp, text, "fz")),
        )
    return _spec_case(draw, tmp, what == "file")


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


RL_TOP_BAD = {
    "algorithm": st.one_of(TEXT, st.integers(), st.lists(TEXT, min_size=1)),
    "policy": st.one_of(TEXT, st.integers(), st.lists(TEXT, min_size=1)),
    "n_envs": st.one_of(
        st.integers(max_value=0),
        st.floats(1.5, 7.5),
        TEXT,
        st.just([8]),
        st.integers(min_value=10**7),
    ),
    "normalize_obs": st.one_of(TEXT, st.integers(2, 9), st.just([True])),
    "hyperparams": st.one_of(
        not_a_table(), st.just({"CartPole-v1": {}}), TEXT.map(lambda s: {s: {}})
    ),
    "search": st.sampled_from(
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
    ),
}
"""Top-level keys of an RL spec -> strategy of bad values."""


@st.composite
def rl_docs(draw: Any) -> dict:
    """RL agent spec documents (``agents/rl/ppo.toml`` with one bad key)."""
    from closedloop.training.spec import valid_hyperparams

    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _ppo_doc().items()}
    doc["hyperparams"] = {s: dict(t) for s, t in doc["hyperparams"].items()}
    default = doc["hyperparams"]["default"]
    what = draw(st.sampled_from(["hyper"] * 5 + [*RL_TOP_BAD, "unknown", "unknown-hp"]))
    if what == "hyper":
        key = draw(st.sampled_from(sorted(HYPER_BAD)))
        default[key] = draw(HYPER_BAD[key])
    elif what == "unknown":
        doc[draw(TEXT.filter(lambda s: s not in doc))] = 1
    elif what == "unknown-hp":
        known = set(valid_hyperparams("PPO")) | set(HYPER_BAD)
        default[draw(TEXT.filter(lambda s: s not in known))] = 1
    else:
        doc[what] = draw(RL_TOP_BAD[what])
    return doc


def _load_rl(path: Path) -> Any:
    from closedloop.training import load_rl_spec

    return load_rl_spec(str(path))


@st.composite
def rl_spec_cases(draw: Any, tmp: Path) -> Case:
    """``parse_rl_spec(bad)`` and ``load_rl_spec(<bad file>)``."""
    from closedloop.training.spec import parse_rl_spec

    doc = draw(rl_docs())
    change, key = _rl_change(doc)
    if draw(st.booleans()) and representable(doc):
        path = write_file(tmp, toml_doc(doc), "fz")
        return Case(
            "rl_spec",
            f"load_rl_spec(<file: ppo.toml with {change}>)",
            functools.partial(_load_rl, path),
            names=(key,),
        )
    return Case(
        "rl_spec",
        f"parse_rl_spec(<ppo.toml with {change}>)",
        functools.partial(parse_rl_spec, doc),
        names=(key,),
    )


def _rl_change(doc: dict) -> tuple[str, str]:
    """The entry of an RL spec document that differs from ``ppo.toml``, and its last key."""
    base = _ppo_doc()
    for key, value in doc.items():
        if key not in base or key not in ("hyperparams",) or not isinstance(value, dict):
            if base.get(key, object()) != value:
                return f"{key}={show(value)}", key
            continue
        for section, table in value.items():
            old = base[key].get(section, {})
            if not isinstance(table, dict) or section not in base[key]:
                return f"{key}.{section}={show(table)}", str(section)
            for k, v in table.items():
                if old.get(k, object()) != v:
                    return f"{key}.{section}.{k}={show(v)}", k
        if set(value) != set(base[key]):
            return f"{key}={show(value)}", key
    return "no change", ""
