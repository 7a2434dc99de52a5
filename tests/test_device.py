"""The device safety model: each limit alone, their order, batching, validation and counting."""

import math
import re

import numpy as np
import pytest

from closedloop._config import ConfigError, from_dict
from closedloop.device import (
    LIMIT_FLAGS,
    DeviceParams,
    InterventionCounter,
    apply_limits,
    apply_limits_scalar,
    limit_many,
    limit_one,
    limit_report,
    ramp,
    ramp_many,
)

P = DeviceParams()
B, C, S, Q, V = (
    LIMIT_FLAGS[k] for k in ("bounds", "clinician", "slew", "charge_density", "compliance")
)
# Defaults that leave every limit slack: short pulse, low impedance, wide window, big slew.
SLACK = {"pw_us": 50.0, "impedance_ohm": 100.0, "min_ma": 0.0, "max_ma": 25.5}


def limit(requested, previous, params=P, n_pulses=1, contact_length_mm=3.0, **kw):
    args = {**SLACK, **kw}
    d, f = apply_limits(
        requested,
        previous,
        args["pw_us"],
        args["impedance_ohm"],
        args["min_ma"],
        args["max_ma"],
        params,
        contact_length_mm,
        n_pulses,
    )
    return d, f


def reference(req, prev, pw, imp, lo, hi, p, length):
    """Scalar pure-Python statement of the five limits on one pulse, in order, with flags."""
    out, flags = req, 0
    top = p.max_current_ma
    anchor = min(max(prev, 0.0), top)
    step = p.max_step_ma
    q_max = p.charge_density_limit_uc_per_cm2 * math.pi * p.contact_diameter_mm * length / 100
    stages = [
        (0.0, top),
        (min(lo, top), hi),
        (anchor - step, anchor + step),
        (-math.inf, q_max / (pw * 1e-3)),
        (-math.inf, p.compliance_v / imp * 1e3),
    ]
    for bit, (a, b) in zip(LIMIT_FLAGS.values(), stages, strict=True):
        new = min(max(out, a), b)
        flags |= bit if new != out else 0
        out = new
    return out, flags


# -- parameters -----------------------------------------------------------------------------
def test_default_contact_charge_and_area():
    assert P.contact_area_cm2(3.0) == pytest.approx(math.pi * 1.3 * 3.0 / 100)  # 0.1225 cm²
    assert P.max_charge_uc(3.0) == pytest.approx(3.676, abs=1e-3)
    np.testing.assert_allclose(P.max_charge_uc(np.array([1.5, 3.0])), [1.838, 3.676], atol=1e-3)


@pytest.mark.parametrize(
    ("field", "value", "range_text"),
    [
        ("max_current_ma", 0.0, "(0, 25.5] mA"),
        ("max_step_ma", -1.0, "(0, 1] mA"),
        ("charge_density_limit_uc_per_cm2", float("nan"), "(0, 30] µC/cm²"),
        ("contact_diameter_mm", 20.0, "[0.1, 1.3] mm"),
        ("compliance_v", 0.0, "(0, 12] V"),
        # the hard ceilings: settings may only tighten the hardware and tissue-safety limits
        ("max_current_ma", 100.0, "(0, 25.5] mA"),
        ("max_current_ma", 25.6, "(0, 25.5] mA"),
        ("max_step_ma", 2.0, "(0, 1] mA"),
        ("charge_density_limit_uc_per_cm2", 1000.0, "(0, 30] µC/cm²"),
        ("charge_density_limit_uc_per_cm2", 30.5, "(0, 30] µC/cm²"),
        ("contact_diameter_mm", 1.4, "[0.1, 1.3] mm"),
        ("compliance_v", 100.0, "(0, 12] V"),
        ("compliance_v", 12.5, "(0, 12] V"),
    ],
)
def test_bad_device_params_name_field_and_range(field, value, range_text):
    with pytest.raises(ConfigError, match=rf"device\.{field}=.*{re.escape(range_text)}"):
        DeviceParams(**{field: value})


def test_device_params_from_dict_rejects_unknown_keys():
    assert from_dict(DeviceParams, {"compliance_v": 10.0}).compliance_v == 10.0
    with pytest.raises(ConfigError, match="compliance_volts"):
        from_dict(DeviceParams, {"compliance_volts": 15.0})


# -- each limit alone -----------------------------------------------------------------------
def test_no_limit_acts_inside_all_limits():
    d, f = limit(5.0, 4.5)
    assert d == 5.0 and f == 0
    assert isinstance(d, np.ndarray) and d.shape == () and d.dtype == np.float64
    assert f.shape == () and f.dtype == np.int8


@pytest.mark.parametrize(("requested", "expected"), [(30.0, 25.5), (-2.0, 0.0)])
def test_hardware_bounds(requested, expected):
    d, f = limit(requested, expected)  # from the edge itself: the slew does not act
    assert d == expected and f == B


def test_clinician_window():
    d, f = limit(10.0, 7.5, min_ma=2.0, max_ma=8.0)
    assert d == 8.0 and f == C
    d, f = limit(1.0, 2.5, min_ma=2.0, max_ma=8.0)
    assert d == 2.0 and f == C


def test_slew_ramps_pulse_by_pulse():
    d, f = limit(10.0, 5.0)
    assert d == 6.0 and f == S
    d, f = limit(0.0, 5.0, n_pulses=3)  # every pulse steps by max_step_ma
    np.testing.assert_array_equal(d, [4.0, 3.0, 2.0])
    np.testing.assert_array_equal(f, [S, S, S])
    d, f = limit(10.0, 5.0, n_pulses=6)  # reaches the request on the fifth pulse
    np.testing.assert_array_equal(d, [6.0, 7.0, 8.0, 9.0, 10.0, 10.0])
    np.testing.assert_array_equal(f, [S, S, S, S, 0, 0])


def test_charge_density_at_250_us():
    # 30 µC/cm² * pi * 1.3 mm * 3 mm = 3.676 µC per phase -> I <= 3.676 µC / 250 µs = 14.70 mA
    d, f = limit(20.0, 19.5, pw_us=250.0)
    assert float(d) == pytest.approx(14.7027, abs=1e-4) and f == Q
    d, f = limit(20.0, 19.5, pw_us=1000.0, contact_length_mm=1.5)
    assert float(d) == pytest.approx(1.838, abs=1e-3) and f == Q


def test_compliance_12_v_at_1000_ohm():
    d, f = limit(20.0, 19.5, impedance_ohm=1000.0)
    assert float(d) == pytest.approx(12.0, rel=1e-12) and f == V
    d, f = limit(20.0, 19.5, impedance_ohm=1500.0)
    assert float(d) == pytest.approx(8.0, rel=1e-12) and f == V


# -- order: the safety limits win -----------------------------------------------------------
def test_safety_cut_is_immediate_despite_slew():
    d, f = limit(20.0, 20.0, impedance_ohm=1000.0)  # no ramp down: 20 -> 12 mA at once
    assert float(d) == pytest.approx(12.0) and f == V


def test_safety_limits_win_over_clinician_minimum():
    d, f = limit(5.0, 15.0, pw_us=250.0, impedance_ohm=1000.0, min_ma=16.0, max_ma=20.0)
    assert float(d) == pytest.approx(12.0) and f == C | Q | V


def test_slew_wins_over_clinician_window():
    d, f = limit(10.0, 3.0, min_ma=0.0, max_ma=2.0)  # window lowered: ramp down by 1 mA
    assert d == 2.0 and f == C
    d, f = limit(10.0, 5.0, min_ma=0.0, max_ma=2.0)
    assert d == 4.0 and f == C | S


def test_all_five_limits_flagged():
    d, f = limit(30.0, 22.0, pw_us=250.0, impedance_ohm=1000.0, min_ma=0.0, max_ma=24.0)
    assert float(d) == pytest.approx(12.0)
    assert f == B | C | S | Q | V == 31


def test_previous_outside_hardware_range_is_anchored_inside():
    low = DeviceParams(max_current_ma=10.0)
    d, f = limit(12.0, 12.0, params=low)
    assert d == 10.0 and f == B


# -- batches and broadcasting ---------------------------------------------------------------
def _random_inputs(rng, n):
    lo = rng.uniform(0.0, 10.0, n) * (rng.random(n) < 0.5)
    return dict(
        requested_ma=rng.uniform(-5.0, 35.0, n),
        previous_ma=rng.uniform(0.0, 25.5, n),
        pw_us=rng.uniform(20.0, 1000.0, n),
        impedance_ohm=rng.uniform(300.0, 2000.0, n),
        min_ma=lo,
        max_ma=lo + rng.uniform(0.0, 20.0, n),
        contact_length_mm=rng.uniform(1.0, 6.0, n),
    )


def test_batch_equals_loop_of_scalars_and_reference():
    rng = np.random.default_rng(0)
    x = _random_inputs(rng, 256)
    d, f = apply_limits(params=P, **x)
    assert d.shape == f.shape == (256,) and d.dtype == np.float64 and f.dtype == np.int8
    for i in range(256):
        xi = {k: float(v[i]) for k, v in x.items()}
        di, fi = apply_limits(params=P, **xi)
        assert di.shape == () and (di, fi) == (d[i], f[i])
        one = apply_limits(params=P, **{k: v[i : i + 1] for k, v in x.items()})
        assert one[0].shape == (1,) and (one[0][0], one[1][0]) == (d[i], f[i])
        args = [
            xi[k]
            for k in ("requested_ma", "previous_ma", "pw_us", "impedance_ohm", "min_ma", "max_ma")
        ]
        rd, rf = reference(*args, P, xi["contact_length_mm"])
        assert d[i] == pytest.approx(rd, rel=1e-12, abs=1e-12) and f[i] == rf
    assert set(np.unique(f)) - {0} and len(np.unique(f)) > 8  # many limit combinations seen


def test_broadcasting_with_scalar_limits_and_inputs_untouched():
    req = np.array([30.0, 5.0, -1.0, 13.0])
    prev = np.array([25.0, 5.0, 0.0, 12.5])
    copies = req.copy(), prev.copy()
    d, f = apply_limits(req, prev, 250.0, 1000.0, 0.0, 25.5, P)
    np.testing.assert_allclose(d, [12.0, 5.0, 0.0, 12.0])
    np.testing.assert_array_equal(f, [B | Q | V, 0, B, V])
    np.testing.assert_array_equal(req, copies[0])
    np.testing.assert_array_equal(prev, copies[1])
    d2, _ = apply_limits(
        5.0, 4.0, 50.0, 100.0, 0.0, np.array([[3.0], [10.0]]), P, np.array([1.0, 2.0, 3.0])
    )
    assert d2.shape == (2, 3)
    np.testing.assert_array_equal(d2, [[3.0] * 3, [5.0] * 3])


def test_empty_batch():
    d, f = apply_limits(np.zeros(0), np.zeros(0), 250.0, 1000.0, 0.0, 25.5, P)
    assert d.shape == f.shape == (0,)
    assert limit_report(f) == dict.fromkeys(LIMIT_FLAGS, 0)


def test_property_delivered_current_never_violates_a_limit():
    rng = np.random.default_rng(12345)
    for _ in range(20):
        params = _random_params(rng)
        x = _random_inputs(rng, 1000)
        d, f = apply_limits(params=params, **x)
        tol = 1e-12
        anchor = np.clip(x["previous_ma"], 0.0, params.max_current_ma)
        step = params.max_step_ma
        q_uc = d * x["pw_us"] * 1e-3
        safety_cut = (f & (Q | V)) != 0
        assert np.all(d >= 0.0) and np.all(d <= params.max_current_ma + tol)
        assert np.all(q_uc <= params.max_charge_uc(x["contact_length_mm"]) + tol)
        assert np.all(d * x["impedance_ohm"] * 1e-3 <= params.compliance_v + tol)
        assert np.all(d <= anchor + step + tol)
        assert np.all((d >= anchor - step - tol) | safety_cut)
        assert np.all((d <= x["max_ma"] + tol) | ((f & S) != 0))
        assert np.all(
            (d >= x["min_ma"] - tol)
            | ((f & (S | Q | V)) != 0)
            | (x["min_ma"] > params.max_current_ma)
        )
        assert np.all((d == x["requested_ma"]) == (f == 0))


# -- the numba kernels and the scalar entry ------------------------------------------------
KEYS = ("requested_ma", "previous_ma", "pw_us", "impedance_ohm", "min_ma", "max_ma")


def _random_params(rng):
    return DeviceParams(
        max_current_ma=rng.uniform(5.0, 25.5),
        max_step_ma=rng.uniform(0.05, 1.0),
        charge_density_limit_uc_per_cm2=rng.uniform(10.0, 30.0),
        contact_diameter_mm=rng.uniform(0.8, 1.3),
        compliance_v=rng.uniform(5.0, 12.0),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_apply_limits_scalar_equals_apply_limits(seed):
    rng = np.random.default_rng(seed)
    params = P if seed == 0 else _random_params(rng)
    x = _random_inputs(rng, 500)
    x["previous_ma"] = rng.uniform(-5.0, 35.0, 500)  # also outside the hardware range
    x["requested_ma"][::7] = x["previous_ma"][::7]  # ties with the slew anchor
    d, f = apply_limits(params=params, **x)
    for i in range(500):
        args = [float(x[k][i]) for k in KEYS]
        di, fi = apply_limits_scalar(*args, params, float(x["contact_length_mm"][i]))
        assert type(di) is float and type(fi) is int
        assert (di, fi) == (d[i], f[i])
        rd, rf = reference(*args, params, x["contact_length_mm"][i])
        assert di == pytest.approx(rd, rel=1e-12, abs=1e-12) and fi == rf
    assert len(np.unique(f)) > 8


def test_apply_limits_scalar_accepts_ints_and_numpy_scalars():
    want = apply_limits_scalar(30.0, 22.0, 250.0, 1000.0, 0.0, 24.0, P, 3.0)
    assert want[1] == 31
    assert apply_limits_scalar(30, 22, 250, 1000, 0, 24, P, 3) == want
    assert (
        apply_limits_scalar(
            np.float32(30.0), np.float64(22.0), 250.0, 1000.0, 0.0, 24.0, P, np.int64(3)
        )
        == want
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_apply_limits_scalar_rejects_non_finite_request(bad):
    with pytest.raises(ConfigError, match=r"requested_ma=.* must be finite"):
        apply_limits_scalar(bad, 1.0, 250.0, 1000.0, 0.0, 10.0, P, 3.0)


@pytest.mark.parametrize("flag_dtype", [np.int8, np.int64])
def test_limit_many_equals_loop_of_limit_one(flag_dtype):
    rng = np.random.default_rng(7)
    n = 300
    x = _random_inputs(rng, n)
    cols = [np.ascontiguousarray(x[k], dtype=np.float64) for k in KEYS]
    change = np.full(n, P.max_step_ma)
    charge = P.max_charge_uc(x["contact_length_mm"])
    copies = [c.copy() for c in (*cols, change, charge)]
    d = np.full(n, np.nan)
    f = np.full(n, -1, dtype=flag_dtype)
    limit_many(*cols, P.max_current_ma, change, charge, P.compliance_v, d, f)
    for i in range(n):
        di, fi = limit_one(
            *(c[i] for c in cols), P.max_current_ma, change[i], charge[i], P.compliance_v
        )
        assert (di, fi) == (d[i], f[i])
    for c, orig in zip((*cols, change, charge), copies, strict=True):
        np.testing.assert_array_equal(c, orig)  # inputs untouched
    d_api, f_api = apply_limits(params=P, **x)
    np.testing.assert_array_equal(d, d_api)
    np.testing.assert_array_equal(f, f_api)
    empty = np.zeros(0)
    limit_many(*[empty] * 6, 25.5, empty, empty, 12.0, empty, np.zeros(0, dtype=flag_dtype))


def test_apply_limits_any_layout_gives_same_result_and_one_kernel_type():
    rng = np.random.default_rng(11)
    x = _random_inputs(rng, 24)
    d, f = apply_limits(params=P, **x)
    readonly = {k: v.astype(np.float64) for k, v in x.items()}
    for v in readonly.values():
        v.flags.writeable = False
    strided = {k: np.repeat(v, 2)[::2] for k, v in x.items()}
    square = {k: v.reshape(4, 6) for k, v in x.items()}
    fortran = {k: np.asfortranarray(v.reshape(4, 6)) for k, v in x.items()}
    for variant in (readonly, strided):
        dv, fv = apply_limits(params=P, **variant)
        np.testing.assert_array_equal(dv, d)
        np.testing.assert_array_equal(fv, f)
    for variant in (square, fortran):
        dv, fv = apply_limits(params=P, **variant)
        assert dv.shape == fv.shape == (4, 6) and fv.dtype == np.int8
        np.testing.assert_array_equal(dv.ravel(), d)
        np.testing.assert_array_equal(fv.ravel(), f)
    for sig in limit_many.signatures:  # read-only or strided inputs never reach the kernel
        for t in sig[:6] + sig[7:9]:
            assert (t.dtype.name, t.ndim, t.layout, t.mutable) == ("float64", 1, "C", True)


# -- validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_request_raises(bad):
    with pytest.raises(ConfigError, match=r"requested_ma=.* must be finite"):
        apply_limits(bad, 1.0, 250.0, 1000.0, 0.0, 10.0, P)
    with pytest.raises(ConfigError, match=r"requested_ma\[2\]=.* must be finite"):
        apply_limits(np.array([1.0, 2.0, bad, bad]), 1.0, 250.0, 1000.0, 0.0, 10.0, P)
    with pytest.raises(ConfigError, match=r"requested_ma=.* must be finite"):
        apply_limits(np.array(bad), 1.0, 250.0, 1000.0, 0.0, 10.0, P)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"previous_ma": math.nan}, r"previous_ma=nan must be finite"),
        ({"pw_us": 0.0}, r"pw_us=0.0 must be finite and > 0"),
        ({"impedance_ohm": np.array([1000.0, -5.0])}, r"impedance_ohm\[1\]=-5.0 must be"),
        ({"min_ma": -1.0}, r"min_ma=-1.0 must be finite and >= 0"),
        ({"max_ma": math.inf}, r"max_ma=inf must be finite"),
        ({"min_ma": 5.0, "max_ma": 4.0}, r"max_ma < min_ma"),
        ({"min_ma": np.array([1.0, 6.0]), "max_ma": 5.0}, r"max_ma < min_ma at \[1\]"),
        ({"contact_length_mm": 0.0}, r"contact_length_mm=0.0 must be finite and > 0"),
        ({"n_pulses": 0}, r"n_pulses=0 must be an integer in \[1, 1000000\]"),
        ({"n_pulses": 2.5}, r"n_pulses=2.5 must be an integer in \[1, 1000000\]"),
        ({"n_pulses": True}, r"n_pulses=True must be an integer"),
        ({"requested_ma": np.ones(3), "previous_ma": np.ones(2)}, r"do not broadcast"),
        ({"params": {"max_current_ma": 25.5}}, r"params must be a DeviceParams"),
    ],
)
def test_bad_inputs_raise_config_error_naming_them(kwargs, message):
    args = {
        "requested_ma": 5.0,
        "previous_ma": 5.0,
        "pw_us": 250.0,
        "impedance_ohm": 1000.0,
        "min_ma": 0.0,
        "max_ma": 10.0,
        "params": P,
        **kwargs,
    }
    with pytest.raises(ConfigError, match=message):
        apply_limits(**args)


# -- the pulse-by-pulse ramp ----------------------------------------------------------------
def _reference_ramp(req, prev, pw, imps, lo, hi, p, length):
    """Each pulse through :func:`reference` from the pulse before it."""
    out, flags = [], []
    for z in imps:
        prev, f = reference(req, prev, pw, z, lo, hi, p, length)
        out.append(prev)
        flags.append(f)
    return out, flags


@pytest.mark.parametrize("seed", [0, 1])
def test_ramp_is_limit_one_pulse_by_pulse_and_never_jumps(seed):
    rng = np.random.default_rng(seed)
    params = P if seed == 0 else _random_params(rng)
    n, n_p = 200, 20
    x = _random_inputs(rng, n)
    x["previous_ma"] = rng.uniform(-5.0, 35.0, n)
    imp = rng.uniform(300.0, 2000.0, (n, n_p))
    qmax = params.max_charge_uc(x["contact_length_mm"])
    d, f = np.empty((n, n_p)), np.empty((n, n_p), np.int64)
    step_flags = np.empty(n, np.int64)
    cols = [np.ascontiguousarray(x[k]) for k in ("requested_ma", "previous_ma", "pw_us")]
    ramp_many(
        *cols,
        imp,
        x["min_ma"],
        x["max_ma"],
        params.max_current_ma,
        params.max_step_ma,
        qmax,
        params.compliance_v,
        d,
        f,
        step_flags,
    )
    for i in range(n):
        args = [float(x[k][i]) for k in ("requested_ma", "previous_ma", "pw_us")]
        di, fi = np.empty(n_p), np.empty(n_p, np.int64)
        or_flags = ramp(
            *args,
            imp[i],
            x["min_ma"][i],
            x["max_ma"][i],
            params.max_current_ma,
            params.max_step_ma,
            qmax[i],
            params.compliance_v,
            di,
            fi,
        )
        np.testing.assert_array_equal(di, d[i])
        np.testing.assert_array_equal(fi, f[i])
        assert or_flags == step_flags[i] == np.bitwise_or.reduce(fi)
        rd, rf = _reference_ramp(
            *args, imp[i], x["min_ma"][i], x["max_ma"][i], params, x["contact_length_mm"][i]
        )
        np.testing.assert_allclose(di, rd, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(fi, rf)
    # No pulse changes by more than the per-pulse slew, except a safety cut downwards.
    anchor = np.clip(x["previous_ma"], 0.0, params.max_current_ma)[:, None]
    change = np.diff(np.concatenate((anchor, d), axis=1), axis=1)
    cut = (f & (Q | V)) != 0
    assert np.all(change <= params.max_step_ma + 1e-12)
    assert np.all((change >= -params.max_step_ma - 1e-12) | cut)
    assert np.isclose(np.abs(change), params.max_step_ma).sum() > n  # the ramp was seen


def test_apply_limits_with_several_pulses_gives_every_pulse():
    rng = np.random.default_rng(3)
    x = _random_inputs(rng, 50)
    d, f = apply_limits(params=P, n_pulses=7, **x)
    assert d.shape == f.shape == (50, 7) and f.dtype == np.int8
    for i in range(50):
        args = [float(x[k][i]) for k in KEYS]
        rd, rf = _reference_ramp(*args[:3], [args[3]] * 7, *args[4:], P, x["contact_length_mm"][i])
        np.testing.assert_allclose(d[i], rd, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(f[i], rf)
    one, _ = apply_limits(30.0, 0.0, 50.0, 100.0, 0.0, 25.5, P, n_pulses=30)
    np.testing.assert_array_equal(one, np.minimum(np.arange(1.0, 31.0), 25.5))


# -- counting -------------------------------------------------------------------------------
def test_limit_flags_are_distinct_bits_in_order():
    assert list(LIMIT_FLAGS.values()) == [1, 2, 4, 8, 16]  # limit_one sets these bits


def test_limit_report_counts_each_bit():
    flags = np.array([0, B, B | C, S, Q | V, Q, 31], dtype=np.int8)
    assert limit_report(flags) == {
        "bounds": 3,
        "clinician": 2,
        "slew": 2,
        "charge_density": 3,
        "compliance": 2,
    }
    assert limit_report(np.int8(V)) == {
        "bounds": 0,
        "clinician": 0,
        "slew": 0,
        "charge_density": 0,
        "compliance": 1,
    }
    assert list(limit_report(flags)) == list(LIMIT_FLAGS)
    with pytest.raises(ConfigError, match="flags"):
        limit_report(np.array([32]))


def test_limit_report_matches_brute_force():
    f = np.random.default_rng(3).integers(0, 32, (40, 25)).astype(np.int8)
    expected = {name: int(np.count_nonzero(f & bit)) for name, bit in LIMIT_FLAGS.items()}
    assert limit_report(f) == expected


def test_intervention_counter_accumulates_and_resets():
    counter = InterventionCounter()
    _, f1 = apply_limits(30.0, 25.0, 250.0, 1000.0, 0.0, 25.5, P)  # bounds, charge, compliance
    counts = counter.update(f1)
    assert counts == {"bounds": 1, "clinician": 0, "slew": 0, "charge_density": 1, "compliance": 1}
    _, f2 = apply_limits(np.array([10.0, 1.0]), 5.0, 50.0, 100.0, 0.0, 8.0, P)
    counts = counter.update(f2)
    assert counts == {"bounds": 1, "clinician": 1, "slew": 2, "charge_density": 1, "compliance": 1}
    assert counter.n_seen == 3
    counts["bounds"] = 99  # the returned dict is a copy
    assert counter.counts["bounds"] == 1
    counter.reset()
    assert counter.counts == dict.fromkeys(LIMIT_FLAGS, 0) and counter.n_seen == 0
