"""Fuzz cases of scenarios and benchmark suites (``fuzz_patients`` has the patients).

Each ``*_cases`` function is a hypothesis strategy of :class:`fuzz_inputs.Case` (see
``fuzz_cases``). A suite case runs :func:`closedloop.benchmark.run_benchmark` with the real work
guarded: it must refuse the suite before it claims the run folder.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fuzz_inputs import Case, Garbage
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

# -- scenarios ---------------------------------------------------------------------------------


@functools.cache
def _clinic() -> dict:
    from closedloop.disturbances import load_scenario

    return load_scenario("clinic").to_dict()


def _component_field(draw: Any) -> tuple[str, dict]:
    """A scenario document with one bad field of one component (or of the top level)."""
    from closedloop.disturbances import COMPONENTS

    doc = json.loads(json.dumps(_clinic()))
    key = draw(st.sampled_from(sorted(COMPONENTS)))
    fields = [f for f in fields_of(COMPONENTS[key]) if f[1]]
    if not fields or draw(st.integers(0, 4)) == 0:
        doc[key] = draw(st.one_of(not_a_table(), st.just({"zz_unknown": 1})))
        return key, doc
    if key == "events" and draw(st.booleans()):
        return _event_field(draw, doc)
    name, meta, default = draw(st.sampled_from(fields))
    table = dict(doc.get(key) or {})
    table[name] = draw(st.one_of(bad_value(meta, default), SPECIAL.get(name, st.nothing())))
    doc[key] = table
    return f"{key}.{name}", doc


SPECIAL = {
    "sequence": st.sampled_from(
        [[["nope", 10.0]], [["sitting", -1.0]], [["sitting", float("nan")]], [], [["sitting"]]]
    ),
    "transitions": st.sampled_from(
        [{"sitting": {"nope": 1.0}}, {"sitting": {"standing": -1.0}}, {"nope": {"sitting": 1.0}}]
    ),
    "scheduled": st.sampled_from([[[-5.0, "cough"]], [[10.0, "nope"]], [[10.0]], [["a", "b"]]]),
}
"""Bad values of the scenario fields that hold sequences or tables."""


def _event_field(draw: Any, doc: dict) -> tuple[str, dict]:
    """``doc`` with one bad field of one event type (``events.cough.rate_per_hour``...)."""
    from closedloop.disturbances import BendSpec, CoughSpec, SneezeSpec

    kind, cls = draw(
        st.sampled_from([("cough", CoughSpec), ("sneeze", SneezeSpec), ("bend", BendSpec)])
    )
    fields = [f for f in fields_of(cls) if f[1]]
    events = dict(doc.get("events") or {})
    if not fields or draw(st.integers(0, 4)) == 0:
        events[kind] = draw(st.one_of(not_a_table(), st.just({"zz_unknown": 1})))
        doc["events"] = events
        return f"events.{kind}", doc
    name, meta, default = draw(st.sampled_from(fields))
    events[kind] = {**dict(events.get(kind) or {}), name: draw(bad_value(meta, default))}
    doc["events"] = events
    return f"events.{kind}.{name}", doc


@st.composite
def scenario_docs(draw: Any) -> dict:
    """Scenario documents with one bad entry."""
    what = draw(st.sampled_from(["component"] * 4 + ["duration", "name", "unknown"]))
    if what == "component":
        return _component_field(draw)[1]
    doc = json.loads(json.dumps(_clinic()))
    if what == "duration":
        doc["duration_s"] = draw(
            st.one_of(wrong_types(), st.floats(max_value=0.0), not_finite(), st.booleans())
        )
    elif what == "name":
        doc[draw(st.sampled_from(["name", "description"]))] = draw(
            st.one_of(st.integers(), st.lists(TEXT, min_size=1), st.none())
        )
    else:
        doc[draw(TEXT.filter(lambda s: s not in doc))] = 1.0
    return doc


def _from_file(path: Path) -> Any:
    from closedloop.disturbances import load_scenario

    return load_scenario(str(path))


def _sample(posture: Any, rate: Any, seed: Any) -> Any:
    from closedloop.disturbances import load_scenario

    return load_scenario("clinic", duration_s=2.0).sample(posture, rate, seed)


@st.composite
def scenario_cases(draw: Any, tmp: Path) -> Case:
    """``Scenario.from_dict``, ``load_scenario`` (name, file, overrides), ``sample`` inputs."""
    from closedloop.disturbances import COMPONENTS, Scenario, list_scenarios, load_scenario

    what = draw(st.sampled_from(["dict", "dict", "file", "file", "override", "name", "sample"]))
    if what == "dict":
        doc = draw(scenario_docs())
        return Case(
            "scenario",
            f"Scenario.from_dict(<clinic with {_diff(doc)}>)",
            functools.partial(Scenario.from_dict, doc),
        )
    if what == "file":
        doc = draw(scenario_docs().filter(representable))
        path = write_file(tmp, toml_doc(doc), "fz")
        return Case(
            "scenario",
            f"load_scenario(<file: clinic with {_diff(doc)}>)",
            functools.partial(_from_file, path),
        )
    if what == "override":
        key = draw(st.sampled_from(["duration_s", *COMPONENTS, "zz_unknown"]))
        value = draw(
            st.one_of(
                wrong_types(none_ok=key in COMPONENTS), not_finite(), st.floats(max_value=0.0)
            )
            if key == "duration_s"
            else st.one_of(TEXT, st.integers(), st.just({"zz": 1}), not_finite())
        )
        kwargs = {key: value}
        return Case(
            "scenario",
            f"load_scenario('clinic', {kwargs_text(kwargs)})",
            functools.partial(load_scenario, "clinic", **kwargs),
        )
    if what == "name":
        name = draw(
            st.one_of(
                st.integers(),
                st.none(),
                st.lists(TEXT, min_size=1),
                TEXT.filter(lambda s: s not in list_scenarios()),
                st.just(str(tmp)),
                st.just(str(tmp / "missing.toml")),
                st.just(str(write_file(tmp, "duration_s = = 1\n", "broken"))),
            )
        )
        return Case(
            "scenario", f"load_scenario({show(name)})", functools.partial(load_scenario, name)
        )
    return _sample_case(draw)


def _sample_case(draw: Any) -> Case:
    from closedloop.patients.cohort import get_patient

    posture, rate, seed = dict(get_patient("default").posture_csf_mm), 50.0, 0
    which = draw(st.sampled_from(["posture", "rate", "seed"]))
    if which == "posture":
        posture = draw(
            st.one_of(
                not_a_table(),
                st.just({}),
                st.just({**posture, "zz": 3.0}),
                st.builds(
                    lambda k, v: {**posture, k: v},
                    st.sampled_from(sorted(posture)),
                    st.one_of(not_finite(), st.floats(max_value=0.0), TEXT, st.none()),
                ),
            )
        )
    elif which == "rate":
        rate = draw(st.one_of(wrong_types(), not_finite(), st.floats(max_value=0.0)))
    else:
        seed = draw(
            st.one_of(
                st.integers(max_value=-1),
                st.floats(0.5, 9.5),
                TEXT,
                st.lists(st.integers(0, 3), min_size=1).map(lambda v: [-1, *v]),
            )
        )
    return Case(
        "scenario",
        f"load_scenario('clinic').sample({show(posture)}, {show(rate)}, {show(seed)})",
        functools.partial(_sample, posture, rate, seed),
    )


def _diff(doc: Mapping[str, Any]) -> str:
    """The entries of a scenario document that differ from the clinic scenario."""
    base = _clinic()
    parts = []
    for key, value in doc.items():
        if key not in base:
            parts.append(f"{key}={show(value)}")
        elif value != base[key] and isinstance(value, Mapping) and isinstance(base[key], Mapping):
            parts += [
                f"{key}.{k}={show(v)}"
                for k, v in value.items()
                if k not in base[key] or base[key][k] != v
            ]
        elif value != base[key]:
            parts.append(f"{key}={show(value)}")
    return ", ".join(parts) or "no change"


# -- benchmark suites --------------------------------------------------------------------------

RUNS = itertools.count()
"""Numbers of the run folders of suite cases (each case gets a new folder)."""
SUITE = {
    "name": "fz",
    "controllers": ["open-loop"],
    "env_ids": ["closedloop/ECAPTracking-Test-v0"],
    "patients": "test",
    "n_patients": 1,
    "seeds": [0],
    "baseline": "open-loop",
    "env_overrides": {"episode_s": 1.0},
}
"""A small valid suite; each case changes one of its entries."""

SUITE_BAD = {
    "controllers": st.one_of(
        st.just([]),
        st.just([""]),
        st.lists(TEXT, min_size=1, max_size=2),
        st.just([5]),
        st.just(5),
        st.just([["open-loop"]]),
    ),
    "env_ids": st.one_of(
        st.just(["CartPole-v1"]),
        st.lists(TEXT, min_size=1, max_size=2),
        st.just([]),
        st.just(5),
        st.just([5]),
    ),
    "patients": st.one_of(TEXT, st.just(5), st.just([]), st.just(["nope-1"]), st.just([5])),
    "n_patients": st.one_of(
        st.integers(max_value=-1), st.floats(0.5, 9.5), TEXT, st.just([1]), st.just(True)
    ),
    "seeds": st.one_of(
        st.just([-1]),
        st.just(["a"]),
        st.just([]),
        st.just([0, 0]),
        st.just([2.5]),
        TEXT,
        st.just(-1),
    ),
    "baseline": st.one_of(TEXT.filter(lambda s: s != "open-loop"), st.just(5), st.just("")),
    "env_overrides": st.one_of(
        not_a_table(),
        st.just({"rate_hz": -1.0}),
        st.just({"zz": 1}),
        st.just({"episode_s": "x"}),
        st.just({"episode_s": [1.0]}),
        st.just({"reward": "abc"}),
        st.just({"device": {"max_current_ma": 100.0}}),
    ),
    "name": st.one_of(st.just(5), st.just([1]), st.just({"a": 1})),
}


def _run_suite(suite: Any, out: Path) -> Any:
    from closedloop.benchmark import load_suite, run_benchmark

    if isinstance(suite, Path):
        suite = load_suite(suite)
    try:
        return run_benchmark(suite, out, workers=1, progress=False, plots=False)
    except Exception as exc:
        from closedloop import ConfigError

        claimed = (out / "suite.json").exists() and not (out / "keep").exists()
        if isinstance(exc, ConfigError) and claimed:
            raise Garbage(f"refused ({exc}) after writing {out / 'suite.json'}") from None
        raise


def _corrupt(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.json").write_text(text, encoding="utf-8")
    (folder / "keep").write_text("")
    return folder


@st.composite
def suite_cases(draw: Any, tmp: Path) -> Case:
    """A suite file with one bad entry (or a corrupted ``suite.json`` in the run folder)."""
    from closedloop.benchmark import Suite

    n = next(RUNS)
    out = tmp / f"run{n}"
    if draw(st.integers(0, 6)) == 0:
        text = draw(st.sampled_from(["{not json", "[]", '{"name": 5}', "", "\x00", "null"]))
        folder = _corrupt(tmp / f"corrupt{n}", text)
        return Case(
            "suite",
            f"run_benchmark(<small suite>, out=<folder whose suite.json is {text!r}>)",
            functools.partial(_run_suite, Suite.from_dict(SUITE), folder),
            names=("suite.json",),
        )
    key = draw(st.sampled_from([*SUITE_BAD, "unknown"]))
    doc = dict(SUITE)
    if key == "unknown":
        key = draw(TEXT.filter(lambda s: s not in SUITE))
        doc[key] = 1
    else:
        doc[key] = draw(SUITE_BAD[key])
    change = f"{key}={show(doc[key])}"
    if representable(doc) and draw(st.booleans()):
        path = write_file(tmp, toml_doc(doc), "suite")
        return Case(
            "suite",
            f"run_benchmark(load_suite(<file: small suite with {change}>))",
            functools.partial(_run_suite, path, out),
            names=(key, key.rstrip("s")),
        )
    return Case(
        "suite",
        f"run_benchmark(Suite.from_dict(<small suite with {change}>))",
        functools.partial(_run_suite_dict, doc, out),
        names=(key, key.rstrip("s")),
    )


def _run_suite_dict(doc: Mapping[str, Any], out: Path) -> Any:
    from closedloop.benchmark import Suite

    return _run_suite(Suite.from_dict(doc), out)


def file_strategies(tmp: Path) -> dict[str, tuple[Any, int]]:
    """Entry point -> (strategy, quota of a full run) for scenarios, suites and patients."""
    import fuzz_patients

    return {
        "scenario": (scenario_cases(tmp / "scenarios"), 250),
        "suite": (suite_cases(tmp / "suites"), 100),
        "patient": (fuzz_patients.patient_cases(tmp / "patients"), 150),
    }
