"""Fuzz (hypothesis) of the inputs: every value of any type is accepted with its declared kind
or refused with a ConfigError naming the parameter; make kwargs, actions, patient tables, reset
options, scenario components, controller parameters. Derandomized: the same examples each run."""

import functools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closedloop import ConfigError
from closedloop.patients.cohort import get_patient

ENV_ID = "closedloop/ECAPTracking-v0"


# -- hypothesis: any value of any type is accepted with its declared kind, or a ConfigError ---

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True),
    st.complex_numbers(),
    st.text(max_size=8),
    st.binary(max_size=4),
    st.integers(-1000, 1000).map(np.int64),
    st.floats(-1e4, 1e4).map(np.float32),
    st.sampled_from(["train", "absolute", "incremental", "clinic", "default", "T11"]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.tuples(SCALARS),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
    st.lists(SCALARS, max_size=3).map(lambda x: np.array(x, dtype=object)),
)
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _kind_holds(value, kind) -> bool:
    from closedloop._config import is_integer, is_real

    if kind == "real":
        return is_real(value) and np.isfinite(value)
    if kind == "int":
        return is_integer(value)
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if kind == "text":
        return isinstance(value, str)
    return isinstance(value, tuple) and all(is_real(v) for v in value)


@FUZZ
@given(data=st.data())
def test_fuzz_make_kwargs_accept_only_values_of_the_declared_kind(data):
    import dataclasses

    import gymnasium as gym

    from closedloop._config import field_kind
    from closedloop.device import DeviceParams
    from closedloop.envs.config import EnvConfig, RewardWeights

    cls, table = data.draw(
        st.sampled_from([(EnvConfig, None), (RewardWeights, "reward"), (DeviceParams, "device")])
    )
    field = data.draw(st.sampled_from(dataclasses.fields(cls)))
    value = data.draw(VALUES)
    kwargs = {field.name: value} if table is None else {table: {field.name: value}}
    try:
        env = gym.make(ENV_ID, **kwargs).unwrapped
    except ConfigError as err:
        assert field.name in str(err)
        return
    part = env.spec_.config if table is None else getattr(env.spec_, table)
    assert _kind_holds(getattr(part, field.name), field_kind(field))


@FUZZ
@given(action=VALUES)
def test_fuzz_actions_are_floats_in_the_box_or_a_config_error(action):
    from closedloop.envs.inputs import check_action as _check_action

    try:
        a = _check_action(action, (1,))
    except ConfigError:
        return
    assert len(a) == 1 and type(a[0]) is float and -1.0 <= a[0] <= 1.0


@FUZZ
@given(
    key=st.sampled_from(
        [
            "patient_id",
            "seed",
            "vertebral_level",
            "posture_csf_mm",
            "impedance_ohm",
            "perception",
            "model_overrides",
            "format",
        ]
    ),
    value=VALUES,
)
def test_fuzz_patient_tables(key, value):
    from closedloop.patients.patient import Patient

    doc = get_patient("default").to_dict() | {key: value}
    try:
        patient = Patient.from_dict(doc)
    except ConfigError:
        return
    assert Patient.from_dict(patient.to_dict()) == patient


@settings(FUZZ, max_examples=100)
@given(key=st.sampled_from(["patient", "split", "scenario", "target_uv", "other"]), value=VALUES)
def test_fuzz_reset_options(tracking_env, key, value):
    try:
        obs, _ = tracking_env.reset(seed=1, options={key: value})
    except ConfigError:
        return
    assert np.isfinite(obs).all() and tracking_env.target_uv > 0


@FUZZ
@given(data=st.data())
def test_fuzz_scenario_component_values(data):
    import dataclasses

    from closedloop.disturbances.events import TYPE_SPECS
    from closedloop.disturbances.scenario import COMPONENTS

    part = data.draw(st.sampled_from([*COMPONENTS, "duration_s"]))
    if part == "duration_s":
        overrides = {"duration_s": data.draw(VALUES)}
    elif part == "events":
        kind = data.draw(st.sampled_from([*TYPE_SPECS, "scheduled"]))
        if kind == "scheduled":
            overrides = {"events": {"scheduled": data.draw(VALUES)}}
        else:
            field = data.draw(st.sampled_from(dataclasses.fields(TYPE_SPECS[kind])))
            overrides = {"events": {kind: {field.name: data.draw(VALUES)}}}
    else:
        field = data.draw(st.sampled_from(dataclasses.fields(COMPONENTS[part])))
        overrides = {part: {field.name: data.draw(VALUES)}}
    try:
        scenario = load_scenario_for_fuzz(**overrides)
    except ConfigError:
        return
    trace = scenario.replace(duration_s=2.0).sample(
        dict.fromkeys(("supine", "prone", "side", "sitting", "standing", "walking"), 3.0)
    )
    assert np.isfinite(trace.csf_mm).all()


def load_scenario_for_fuzz(**overrides):
    from closedloop.disturbances import load_scenario

    return load_scenario("daily-living", **overrides)


@FUZZ
@given(data=st.data())
def test_fuzz_controller_parameters(data):
    import dataclasses

    from closedloop._config import field_kind
    from closedloop.controllers import make_controller

    spec = data.draw(st.sampled_from(_agent_specs()))
    field = data.draw(st.sampled_from(dataclasses.fields(spec.params)))
    try:
        ctl = make_controller(spec, **{field.name: data.draw(VALUES)})
    except ConfigError as err:
        assert field.name in str(err)
        return
    assert _kind_holds(getattr(ctl.params, field.name), field_kind(field))


@functools.cache
def _agent_specs() -> tuple:
    """Every controller spec of ``agents/``, read once."""
    from closedloop.controllers import list_agents, load_agent_spec

    return tuple(load_agent_spec(name) for name in list_agents())
