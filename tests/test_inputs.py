"""Bad input is rejected with an error naming the parameter and its valid range; seeds work."""

import numpy as np
import pytest

from closedloop import ConfigError
from closedloop.neural import ModelParams, NeuralModel, growth_curve
from closedloop.patients.cohort import get_patient


def same_records(a, b):
    """Structured pulse records equal field by field (NaN equal to NaN)."""
    return all(np.array_equal(a[f], b[f], equal_nan=a[f].dtype.kind == "f") for f in a.dtype.names)


@pytest.fixture(scope="module")
def model():
    return NeuralModel(ModelParams().replace(population={"n_fibres": 256}), seed=0)


@pytest.mark.parametrize(
    ("kwargs", "name", "valid"),
    [
        ({"current_ma": -1.0}, "current_ma", "[0, 25.5] mA"),
        ({"current_ma": np.nan}, "current_ma", "finite"),
        ({"current_ma": 30.0}, "current_ma", "[0, 25.5] mA"),
        ({"pw_us": 10.0}, "pw_us", "[20, 1000]"),
        ({"pw_us": 1500.0}, "pw_us", "[20, 1000]"),
        ({"pw_us": np.inf}, "pw_us", "finite"),
        ({"rate_hz": 0.0}, "rate_hz", "[1, 10000] Hz"),
        ({"rate_hz": 20_000.0}, "rate_hz", "[1, 10000] Hz"),
        ({"csf_mm": 0.0}, "csf_mm", "[0.5, 12] mm"),
        ({"csf_mm": -2.0}, "csf_mm", "[0.5, 12] mm"),
    ],
)
def test_bad_pulse_train_input_names_parameter_and_range(model, kwargs, name, valid):
    args = {"current_ma": 5.0, "rate_hz": 50.0, "n_pulses": 3} | kwargs
    with pytest.raises(ConfigError) as err:
        model.pulse_train(**args)
    assert name in str(err.value) and valid in str(err.value)


def test_stimulate_rejects_mismatched_lengths(model):
    with pytest.raises(ConfigError, match="share one length"):
        model.stimulate(np.ones(3), 250.0, np.full(4, 3.5), 0.02)


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ({"lead": {"pitch_mmm": 7.0}}, "pitch_mmm"),
        ({"population": {"n_fibres": 0}}, "population.n_fibres"),
        ({"excitability": {"jitter_rel": -0.1}}, "excitability.jitter_rel"),
        ({"lead": {"configuration": "octopolar"}}, "lead.configuration"),
        ({"lead": {"cathode": 0}}, "anodes"),
        ({"lead": {"recording_contact": 2}}, "stimulating contact"),
        ({"recording": {"fs_hz": 8000.0}}, "recording.fs_hz"),
    ],
)
def test_bad_model_parameters(sections, needle):
    with pytest.raises(ConfigError, match=needle):
        ModelParams().replace(**sections)


def test_unknown_section_and_patient():
    with pytest.raises(ConfigError, match="unknown section"):
        ModelParams.from_dict({"leads": {}})
    with pytest.raises(ConfigError, match="valid: default"):
        get_patient("nobody")
    with pytest.raises(ConfigError, match="posture"):
        get_patient("default").csf_mm("handstand")


def test_growth_curve_bad_input(model):
    with pytest.raises(ConfigError, match="currents_ma"):
        growth_curve(model, [1.0, -2.0, 3.0, 4.0])
    with pytest.raises(ConfigError, match="pulses_per_level"):
        growth_curve(model, pulses_per_level=1)


def test_same_seed_same_trajectory_different_seed_differs():
    params = ModelParams().replace(population={"n_fibres": 256})
    a, b = NeuralModel(params, seed=3), NeuralModel(params, seed=3)
    a.reset(11)
    b.reset(11)
    ra, rb = a.pulse_train(6.0, 50, 200), b.pulse_train(6.0, 50, 200)
    assert same_records(ra, rb)
    a.reset(12)
    assert not np.array_equal(a.pulse_train(6.0, 50, 200)["ecap_uv"], ra["ecap_uv"])
    c = NeuralModel(params, seed=4)  # another patient: another fibre population
    assert not np.array_equal(c.fibres.diameter_um, a.fibres.diameter_um)


def test_reset_without_seed_replays_the_stream(model):
    model.reset(5)
    first = model.pulse_train(6.0, 50, 50)
    model.reset()
    assert same_records(model.pulse_train(6.0, 50, 50), first)


def test_keeping_sweeps_does_not_change_the_records(model):
    model.reset(7)
    plain = model.pulse_train(9.0, 50, 30, pw_us=300.0)
    model.reset(7)
    rec, sweeps = model.pulse_train(9.0, 50, 30, pw_us=300.0, waveforms=True)
    assert same_records(plain, rec)
    assert not rec["saturated"].any()  # the saturated pulse itself lies outside the window


# -- strict configuration types (closedloop._config) -----------------------------------------
def _declared_fields():
    """Every :func:`param` field of every dataclass in the package."""
    import dataclasses
    import importlib
    import pkgutil

    import closedloop

    for info in pkgutil.walk_packages(closedloop.__path__, "closedloop."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and dataclasses.is_dataclass(obj)
                and obj.__module__ == module.__name__
            ):
                yield from ((obj, f) for f in dataclasses.fields(obj) if "unit" in f.metadata)


def test_every_declared_field_has_the_kind_of_its_annotation():
    """``param`` records the default's kind; it must agree with the field's type annotation."""
    from closedloop._config import KINDS, field_kind

    fields = list(_declared_fields())
    assert len(fields) > 100
    for cls, f in fields:
        assert f.metadata["kind"] in KINDS
        if f.type in ("float", "int", "bool", "str", "tuple"):
            assert field_kind(f) == f.metadata["kind"], f"{cls.__name__}.{f.name}: {f.type}"


REAL = {"lo": 0.0, "hi": 10.0, "unit": "mA"}


@pytest.mark.parametrize(
    ("value", "kind", "needle"),
    [
        ([1.0], "real", "must be a number in [0, 10] mA"),
        ((1.0,), "real", "must be a number"),
        (np.array([1.0]), "real", "must be a number"),
        ("1.0", "real", "must be a number"),
        (1 + 0j, "real", "must be a number"),
        (np.complex128(1), "real", "must be a number"),
        (True, "real", "must be a number"),
        (np.bool_(True), "real", "must be a number"),
        (None, "real", "must be a number"),
        (np.nan, "real", "out of range"),
        (-np.inf, "real", "out of range"),
        (2.5, "int", "must be an integer in [0, 10] mA"),
        (2.0, "int", "must be an integer"),
        (np.float64(2.0), "int", "must be an integer"),
        (True, "int", "must be an integer"),
        (10**400, "int", "out of range"),
        (3.0, "tuple", "must be a list of values"),
        ([1.0, "a"], "tuple", "x[1]='a' must be a number"),
        ([1.0, 11.0], "tuple", "x[1]=11.0 is out of range"),
        ([1, 2.5], "tuple[int]", "x[1]=2.5 must be an integer"),
        (5, "text", "must be a string"),
    ],
)
def test_check_value_follows_the_declared_kind(value, kind, needle):
    from closedloop._config import check_value

    with pytest.raises(ConfigError) as err:
        check_value("x", value, REAL, kind)
    assert str(err.value).startswith("x") and needle in str(err.value)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (1, "real"),
        (2.5, "real"),
        (np.float32(2.5), "real"),
        (np.int64(3), "real"),
        (3, "int"),
        (np.int32(3), "int"),
        ([1, 2.5], "tuple"),
        ((np.float64(1.0),), "tuple"),
        ([1, 2], "tuple[int]"),
        ("text", "text"),
    ],
)
def test_check_value_accepts_what_the_kind_allows(value, kind):
    from closedloop._config import check_value

    check_value("x", value, REAL, kind)


@pytest.mark.parametrize("value", [1, 1.0, 0, "True", [True], np.array([True])])
def test_boolean_choices_take_only_booleans(value):
    from closedloop._config import check_value

    with pytest.raises(ConfigError, match=r"x=.* is invalid; valid: one of False, True"):
        check_value("x", value, {"choices": (False, True)})
    check_value("x", np.bool_(True), {"choices": (False, True)})


@pytest.mark.parametrize("data", [[("a", 1)], "a=1", None, 3])
def test_from_dict_of_a_non_table_names_the_class(data):
    from closedloop._config import from_dict
    from closedloop.envs.config import RewardWeights

    with pytest.raises(ConfigError, match="RewardWeights: must be a table"):
        from_dict(RewardWeights, data)


def test_from_dict_turns_numpy_scalars_into_python_numbers():
    from closedloop._config import from_dict
    from closedloop.envs.config import EnvConfig

    cfg = from_dict(EnvConfig, {"rate_hz": np.float32(40.0), "history": np.int64(3)})
    assert type(cfg.rate_hz) is float and type(cfg.history) is int


# -- env make kwargs, reset options, actions -------------------------------------------------
ENV_ID = "closedloop/ECAPTracking-v0"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rate_hz": [1.0]}, "env.rate_hz=[1.0] must be a number in [1, 10000] Hz"),
        ({"rate_hz": 50 + 0j}, "env.rate_hz=(50+0j) must be a number"),
        ({"rate_hz": True}, "env.rate_hz=True must be a number"),
        ({"pulses_per_step": 2.5}, "env.pulses_per_step=2.5 must be an integer in [1, 10000]"),
        ({"history": 2.5}, "env.history=2.5 must be an integer in [1, 1000]"),
        ({"history": "4"}, "env.history='4' must be an integer"),
        ({"observe_waveform": 1}, "env.observe_waveform=1 is invalid; valid: one of False, True"),
        ({"action_mode": ["absolute"]}, "env.action_mode=['absolute'] is invalid"),
        ({"scenario": 5}, "env.scenario=5 must be a string"),
        ({"reward": "abc"}, "reward='abc' must be a table (dict) with keys among tracking"),
        ({"device": [1, 2]}, "device=[1, 2] must be a table (dict) with keys among max_current_ma"),
        ({"reward": {"tracking": [1.0]}}, "reward.tracking=[1.0] must be a number"),
        ({"device": {"max_current_ma": "5"}}, "device.max_current_ma='5' must be a number"),
    ],
)
def test_make_kwargs_of_the_wrong_type(kwargs, needle):
    import gymnasium as gym

    with pytest.raises(ConfigError) as err:
        gym.make(ENV_ID, **kwargs)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ("abc", "options='abc' must be a dict with keys among patient, split"),
        ([("patient", "default")], "must be a dict"),
        ({"patient": 5}, "options['patient']=5 must be a string"),
        ({"scenario": None}, "options['scenario']=None must be a string"),
        ({"target_uv": "abc"}, "options['target_uv']='abc' must be a number in (0, 2000] µV"),
        ({"target_uv": 30 + 0j}, "must be a number"),
        ({"target_uv": np.nan}, "options['target_uv']=nan is out of range"),
        ({"split": 3}, "options['split']=3 is invalid; valid: one of 'train', 'validation'"),
        ({"patient": "nobody"}, "patient='nobody' is unknown"),
        ({"scenario": "nowhere"}, "scenario='nowhere' is unknown; valid: chronic-drift"),
        ({"colour": "red"}, "unknown reset option(s) colour"),
    ],
)
def test_reset_options_of_the_wrong_type(tracking_env, options, needle):
    with pytest.raises(ConfigError) as err:
        tracking_env.reset(seed=0, options=options)
    assert needle in str(err.value)


@pytest.mark.parametrize("seed", [-1, 2.5, "1", [1]])
def test_reset_seed_must_be_a_non_negative_integer(tracking_env, seed):
    with pytest.raises(ConfigError, match="seed="):
        tracking_env.reset(seed=seed)


BAD_ACTIONS = [
    "abc",
    {"a": 0.1},
    None,
    np.array(["0.1"], dtype=object),
    [[0.1], [0.2, 0.3]],
    np.array([0.1 + 0.5j]),
    [0.1 + 0j],
    np.array([True]),
    np.array(["0.1"]),
]


@pytest.mark.parametrize("action", BAD_ACTIONS[1:] + BAD_ACTIONS[:1], ids=repr)
def test_malformed_actions_raise_config_error_in_the_scalar_env(tracking_env, action):
    tracking_env.reset(seed=0)
    with pytest.raises(ConfigError, match="action"):
        tracking_env.step(action)
    tracking_env.step(np.array([0.1], np.float32))  # still usable


def test_malformed_actions_raise_config_error_in_the_several_pulse_step():
    from closedloop.envs.inputs import check_action as _check_action

    for action in BAD_ACTIONS:
        with pytest.raises(ConfigError, match="action"):
            _check_action(action, (1,))
    assert _check_action(np.array([2.0]), (1,)) == [1.0]
    assert _check_action(np.array([0.25], dtype=object), (1,)) == [0.25]  # as the fast path
    assert _check_action([0.25], (1,)) == [0.25]


@pytest.fixture(scope="module")
def venv():
    from closedloop.envs.vector import ECAPVectorEnv

    venv = ECAPVectorEnv(2, ENV_ID, patient="default", episode_s=2.0)
    venv.reset(seed=0)
    return venv


VECTOR_BAD_ACTIONS = [
    "ab",
    {"a": 1},
    None,
    np.full((2, 1), None, object),
    [[0.1], [0.2, 0.3]],
    np.zeros((2, 1), complex),
    [0.1 + 0j, 0.2],
    np.zeros((2, 1), bool),
    np.array([["0.1"], ["0.2"]]),
]


@pytest.mark.parametrize("actions", VECTOR_BAD_ACTIONS, ids=repr)
def test_malformed_actions_raise_config_error_in_the_vector_env(venv, actions):
    from closedloop.envs.sb3 import SB3VecEnv

    with pytest.raises(ConfigError, match="actions"):
        venv.step(actions)
    sb3 = SB3VecEnv(venv)
    sb3.step_async(actions)
    with pytest.raises(ConfigError, match="actions"):
        sb3.step_wait()
    venv.step(np.zeros((2, 1), np.float32))  # still usable


@pytest.mark.parametrize(
    ("num_envs", "seed", "needle"),
    [
        (2.5, None, "num_envs=2.5 must be an integer"),
        (True, None, "num_envs=True must be an integer"),
        (0, None, "num_envs=0 is out of range"),
        (2, -1, "seed[0]=-1 is out of range"),
        (2, "a", "seed='a' must be None"),
        (2, [1], "seed=[1] must be None, a non-negative int or a list of 2"),
        (2, [1, 2.5], "seed[1]=2.5 must be an integer"),
    ],
)
def test_vector_env_arguments(venv, num_envs, seed, needle):
    from closedloop.envs.vector import ECAPVectorEnv

    with pytest.raises(ConfigError) as err:
        if num_envs == 2:
            venv.reset(seed=seed)
        else:
            ECAPVectorEnv(num_envs, ENV_ID)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"id": 5}, "'id' must be a non-empty string"),
        ({}, "'id' must be a non-empty string"),
        ({"id": "x/Y-v0", "env": [1]}, "[env]: must be a table"),
        ({"id": "x/Y-v0", "env": {"history": 2.5}}, "env.history=2.5 must be an integer"),
    ],
)
def test_env_spec_files_of_the_wrong_shape(doc, needle):
    from closedloop.envs.config import parse_spec

    with pytest.raises(ConfigError) as err:
        parse_spec(doc, "bad.toml")
    assert needle in str(err.value)


@pytest.mark.parametrize("env_id", [[1], None, 5, "CartPole-v1"])
def test_env_ids_outside_the_suite(env_id):
    from closedloop.envs.ecap_env import ECAPTrackingEnv
    from closedloop.envs.vector import ECAPVectorEnv

    for make in (lambda: ECAPTrackingEnv(env_id), lambda: ECAPVectorEnv(2, env_id)):
        with pytest.raises(ConfigError, match=r"env_id=.* is unknown; valid: closedloop/"):
            make()
