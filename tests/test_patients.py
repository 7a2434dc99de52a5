"""Patients: validation, save/load, pickling, named and cohort ids; the perception model."""

import dataclasses
import json
import pickle

import numpy as np
import pytest

from closedloop import ConfigError
from closedloop.patients.cohort import get_patient
from closedloop.patients.patient import NAMED_PATIENTS, Patient, load_patient
from closedloop.patients.perception import PerceptionParams, sensation


def test_save_load_round_trip_gives_the_same_patient_and_responses(tmp_path):
    patient = get_patient("train-004")
    path = patient.save(tmp_path / "p.json")
    back = load_patient(path)
    assert back == patient
    assert json.loads(path.read_text())["patient_id"] == "train-004"
    a = patient.model().pulse_train(6.0, n_pulses=20)
    b = back.model().pulse_train(6.0, n_pulses=20)
    assert np.array_equal(a, b)


def test_pickle_round_trip():
    patient = get_patient("lateral-lead")
    assert pickle.loads(pickle.dumps(patient)) == patient


def test_file_is_readable_and_lists_only_changed_model_parameters():
    doc = get_patient("lateral-lead").to_dict()
    assert doc["model_overrides"] == {"lead": {"lateral_offset_mm": 1.0}}
    assert set(doc["posture_csf_mm"]) == {
        "supine",
        "prone",
        "side",
        "sitting",
        "standing",
        "walking",
    }


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"posture_csf_mm": {"supine": 3.0}}, "posture_csf_mm must have exactly the keys"),
        ({"impedance_ohm": 50.0}, "impedance_ohm=50.0 is out of range; valid range [100, 10000]"),
        ({"vertebral_level": "L1"}, "vertebral_level='L1' is invalid; valid: one of 'T11', 'T12'"),
        ({"patient_id": "a b"}, "patient_id='a b'"),
        ({"seed": -1}, "seed=-1 is out of range; valid range [0, inf)"),
        ({"seed": 2.5}, "seed=2.5 must be an integer in [0, inf)"),
        ({"seed": True}, "seed=True must be an integer"),
        ({"posture_csf_mm": [3.0] * 6}, "posture_csf_mm=[3.0, 3.0"),
        ({"impedance_ohm": [900.0]}, "impedance_ohm=[900.0] must be a number in [100, 10000]"),
        ({"impedance_ohm": 900 + 0j}, "impedance_ohm=(900+0j) must be a number"),
        ({"target_position": 1.5}, "target_position=1.5 is out of range; valid range [-1, 1]"),
        ({"target_position": float("nan")}, "target_position=nan"),
        ({"migration_mm": -4.0}, "migration_mm=-4.0 is out of range; valid range [-3, 3]"),
        ({"migration_mm": "1"}, "migration_mm='1' must be a number"),
    ],
)
def test_bad_patient_fields_are_named(change, needle):
    with pytest.raises(ConfigError) as err:
        dataclasses.replace(get_patient("default"), **change)
    assert needle in str(err.value)


def test_csf_out_of_range_names_the_posture():
    csf = dict(get_patient("default").posture_csf_mm, sitting=13.0)
    with pytest.raises(
        ConfigError,
        match=r"posture_csf_mm.sitting=13.0 is out of range; "
        r"valid range \[0.5, 12\] mm",
    ):
        dataclasses.replace(get_patient("default"), posture_csf_mm=csf)


def test_unknown_key_in_file_is_named(tmp_path):
    doc = get_patient("default").to_dict() | {"colour": "red"}
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        load_patient(tmp_path / "p.json")
    doc = get_patient("default").to_dict()
    doc["model_overrides"] = {"lead": {"pitch": 3}}
    with pytest.raises(ConfigError, match="pitch"):
        Patient.from_dict(doc)


@pytest.mark.parametrize(
    "name, needle",
    [
        ("nobody", "patient='nobody' is unknown; valid: default, thin-csf"),
        ("train-100", "cohort train has ids train-000 to train-099"),
        ("holdout-001", "patient='holdout-001' is unknown"),
    ],
)
def test_unknown_patient_ids_are_named(name, needle):
    with pytest.raises(ConfigError) as err:
        get_patient(name)
    assert needle in str(err.value)


def test_named_patients_have_a_window_above_the_ecap_threshold():
    for name in NAMED_PATIENTS:
        perception = get_patient(name).perception
        assert 0 < perception.perception_fraction < perception.discomfort_fraction < 1
        assert perception.discomfort_level > 2


def test_sensation_steady_state_rate_factor_and_smoothing():
    params = PerceptionParams(
        perception_fraction=0.01, discomfort_fraction=0.1, tau_s=0.1, rate_exponent=0.25
    )
    t = np.arange(500) / 50.0
    steady = sensation(np.full(500, 0.02), t, 50.0, params)
    assert np.allclose(steady, 2.0)
    assert np.allclose(sensation(np.full(500, 0.02), t, 800.0, params), 2.0 * 16**0.25)
    step = np.where(t >= 2.0, 0.02, 0.0)
    out = sensation(step, t, 50.0, params)
    k = np.searchsorted(t, 2.0 + 0.1)  # one time constant after the step
    assert out[k] == pytest.approx(2.0 * (1 - np.exp(-1.0 - 0.02 / 0.1)), rel=0.02)
    assert out[np.searchsorted(t, 2.0) - 1] == 0.0
    with pytest.raises(ConfigError, match="frac_recruited must lie in"):
        sensation(np.full(3, 1.5), t[:3], 50.0, params)


def test_sensation_rises_with_rate_while_the_ecap_falls():
    """Gmel 2021: from 2 to 455 Hz the ECAP falls and the sensation rises [C]."""
    patient = get_patient("default")
    model = patient.model()
    out = {}
    for rate in (2.0, 50.0, 455.0):
        rec = model.pulse_train(
            8.0, rate, n_pulses=int(max(40, rate * 2)), csf_mm=patient.csf_mm("sitting")
        )
        tail = rec[len(rec) // 2 :]
        feel = patient.perception.steady_sensation(tail["frac_recruited"].mean(), rate)
        out[rate] = (tail["ecap_true_uv"].mean(), feel)
        model.reset()
    assert out[2.0][0] > out[50.0][0] > out[455.0][0]
    assert out[2.0][1] < out[50.0][1] < out[455.0][1]


def _patient_doc(**changes):
    return get_patient("default").to_dict() | changes


@pytest.mark.parametrize(
    "text, needle",
    [
        (None, "cannot be read"),  # no such file
        ("{", "not valid JSON"),
        (b"\xff\xfe", "cannot be read"),  # not UTF-8
        ("[1, 2]", "a patient must be a table (JSON object)"),
        ("null", "a patient must be a table (JSON object)"),
        (json.dumps(_patient_doc(seed="1")), "seed='1' must be an integer"),
        (json.dumps(_patient_doc(perception=[1])), "perception: must be a table"),
        (json.dumps(_patient_doc(model_overrides=[1])), "model_overrides=[1] must be a table"),
        (
            json.dumps(_patient_doc(model_overrides={"lead": 3})),
            "model_overrides.lead: must be a table",
        ),
        (
            json.dumps(_patient_doc(model_overrides={"lead": {"n_contacts": 8.5}})),
            "lead.n_contacts=8.5 must be an integer in [2, 32]",
        ),
        (json.dumps(_patient_doc(posture_csf_mm=5)), "posture_csf_mm=5 must be a table"),
    ],
)
def test_bad_patient_files_raise_config_error(tmp_path, text, needle):
    path = tmp_path / "p.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_patient(path)
    assert needle in str(err.value)


def test_a_directory_or_a_non_path_is_not_a_patient_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        load_patient(tmp_path)
    with pytest.raises(ConfigError, match="must be a file path"):
        load_patient(3)


@pytest.mark.parametrize("data", [[1, 2], None, "default", 5, {1: 2}])
def test_patient_from_dict_of_a_non_table_or_bad_keys(data):
    with pytest.raises(ConfigError, match="a patient must be a table|unknown key"):
        Patient.from_dict(data)


@pytest.mark.parametrize("name", [5, None, ["default"], ("default",), {"a": 1}])
def test_get_patient_of_a_non_string(name):
    with pytest.raises(ConfigError, match="must be a string"):
        get_patient(name)


def test_migration_moves_the_csf_the_lead_sees_but_not_the_programmed_one(tmp_path):
    patient = dataclasses.replace(get_patient("default"), migration_mm=1.0, target_position=0.3)
    now = patient.posture_csf_now_mm
    for posture, programmed in patient.posture_csf_mm.items():
        assert now[posture] == pytest.approx(min(12.0, programmed + 1.0))
    assert patient.csf_mm("sitting") == patient.posture_csf_mm["sitting"]
    back = load_patient(patient.save(tmp_path / "m.json"))
    assert back == patient and back.migration_mm == 1.0 and back.target_position == 0.3
    far = dataclasses.replace(
        patient, posture_csf_mm={p: 11.5 for p in patient.posture_csf_mm}, migration_mm=2.0
    )
    assert set(far.posture_csf_now_mm.values()) == {12.0}  # clipped to the model's range


def test_the_env_samples_the_migrated_csf():
    import gymnasium as gym

    import closedloop  # noqa: F401  (registers the envs)
    from closedloop.patients.cohort import load_cohort

    moved = next(p for p in load_cohort("train") if p.migration_mm > 0)
    env = gym.make("closedloop/ECAPClinic-v0", patient=moved.patient_id, episode_s=20.0)
    env.reset(seed=0)
    trace = env.unwrapped.trace
    first = trace.parts["posture"][trace.t_s < 5.0]  # the sequence starts supine
    assert np.allclose(first, moved.posture_csf_now_mm["supine"])
    assert moved.posture_csf_now_mm["supine"] == pytest.approx(
        moved.posture_csf_mm["supine"] + moved.migration_mm
    )
    env.close()
