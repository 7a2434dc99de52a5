"""Fuzz cases of the patients: ``Patient.from_dict``, ``load_patient`` files, ``get_patient``.

Each ``*_cases`` function is a hypothesis strategy of :class:`fuzz_inputs.Case` (see
``fuzz_cases``); patient files are written under the run's temporary folder.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from fuzz_inputs import Case
from fuzz_values import (
    TEXT,
    bad_value,
    fields_of,
    not_a_table,
    not_finite,
    representable,
    show,
    write_file,
    wrong_types,
)
from hypothesis import strategies as st

# -- patients ----------------------------------------------------------------------------------


@functools.cache
def _patient_doc() -> dict:
    from closedloop.patients.cohort import get_patient

    return get_patient("default").to_dict()


def _bad_patient_entries(doc: dict) -> dict[str, st.SearchStrategy]:
    """Key of a patient document -> strategy of bad values for it."""
    from closedloop.patients.perception import PerceptionParams

    def bad_perception(draw: Any) -> Any:
        name, meta, default = draw(st.sampled_from(fields_of(PerceptionParams)))
        return draw(
            st.one_of(
                not_a_table(), st.just({"zz": 1}), bad_value(meta, default).map(lambda v: {name: v})
            )
        )

    postures = doc["posture_csf_mm"]
    one_posture = st.builds(
        lambda k, v: {**postures, k: v},
        st.sampled_from(sorted(postures)),
        st.one_of(not_finite(), st.floats(max_value=0.0), TEXT),
    )
    return {
        "seed": st.one_of(
            st.integers(max_value=-1),
            st.floats(0.5, 9.5),
            TEXT,
            wrong_types(text_ok=True),
            not_finite(),
        ),
        "vertebral_level": st.one_of(TEXT.filter(lambda s: not s.startswith("T")), st.integers()),
        "posture_csf_mm": st.one_of(not_a_table(), st.just({}), one_posture),
        "impedance_ohm": st.one_of(st.floats(max_value=0.0), not_finite(), TEXT, st.just([900.0])),
        "perception": st.composite(bad_perception)(),
        "model_overrides": st.sampled_from(
            [
                "abc",
                5,
                {"zz": {}},
                {"lead": {"zz": 1}},
                {"lead": "abc"},
                {"lead": {"lateral_offset_mm": "x"}},
                [1],
            ]
        ),
        "patient_id": st.one_of(
            st.integers(), st.just(""), st.just("../x"), st.none(), st.just("a b")
        ),
        "format": st.one_of(TEXT, st.integers()),
    }


@st.composite
def patient_docs(draw: Any) -> dict:
    """Patient documents (the ``default`` patient's) with one bad entry."""
    doc = json.loads(json.dumps(_patient_doc()))
    bad = _bad_patient_entries(doc)
    key = draw(st.sampled_from([*bad, "unknown"]))
    if key == "unknown":
        doc[draw(TEXT.filter(lambda s: s not in doc))] = 1
    else:
        doc[key] = draw(bad[key])
    return doc


def _load_patient(path: Path) -> Any:
    from closedloop.patients.patient import load_patient

    return load_patient(path)


@st.composite
def patient_cases(draw: Any, tmp: Path) -> Case:
    """``Patient.from_dict``, ``load_patient`` of bad files, ``get_patient`` of bad names."""
    from closedloop.patients.cohort import get_patient
    from closedloop.patients.patient import Patient

    what = draw(st.sampled_from(["dict", "dict", "file", "file", "not-a-dict", "path", "name"]))
    if what in ("dict", "file"):
        doc = draw(patient_docs())
        keys = tuple(k for k, v in doc.items() if _patient_doc().get(k, object()) != v)
        change = ", ".join(f"{k}={show(doc[k])}" for k in keys)
        if what == "dict" or not representable(doc):  # JSON holds what TOML holds
            return Case(
                "patient",
                f"Patient.from_dict(<default with {change}>)",
                functools.partial(Patient.from_dict, doc),
                names=keys,
            )
        path = write_file(tmp, json.dumps(doc), "patient", ".json")
        return Case(
            "patient",
            f"load_patient(<file: default with {change}>)",
            functools.partial(_load_patient, path),
            names=keys,
        )
    if what == "not-a-dict":
        doc = draw(
            st.one_of(
                st.lists(st.integers(), max_size=2), TEXT, st.integers(), st.none(), not_finite()
            )
        )
        return Case(
            "patient", f"Patient.from_dict({show(doc)})", functools.partial(Patient.from_dict, doc)
        )
    if what == "path":
        text = draw(st.sampled_from(["", "{", "[1, 2]", "null", "\x00\x01", "5", '"x"']))
        path = draw(
            st.sampled_from([tmp / "missing.json", tmp, write_file(tmp, text, "patient", ".json")])
        )
        return Case(
            "patient",
            f"load_patient(<{path.name}: {text!r}>)",
            functools.partial(_load_patient, path),
        )
    name = draw(
        st.one_of(
            TEXT.filter(lambda s: s not in ("default", "thin-csf", "thick-csf", "lateral-lead")),
            st.just("train-99999"),
            st.integers(),
            st.none(),
            st.just(""),
        )
    )
    return Case("patient", f"get_patient({show(name)})", functools.partial(get_patient, name))
