"""Property check of the device's limits on every pulse (issue 16).

Runs every registered ``closedloop/`` id, every action mode and both env kinds (the scalar
:class:`~closedloop.envs.ecap_env.ECAPTrackingEnv` through ``gymnasium.make`` and the native
:class:`~closedloop.envs.vector.ECAPVectorEnv` where the id supports it) on random and
adversarial action sequences, and checks every delivered pulse from the ground truth in
``info`` (``current_ma``/``impedance_ohm``/``device_flags`` for one pulse per step,
``pulse_current_ma``/``pulse_impedance_ohm``/``pulse_flags`` for several, ``pw_us`` when the
action sets it) against an independent NumPy statement of the limits:

* ``hardware``: ``0 <= I <= max_current_ma`` (itself at most 25.5 mA);
* ``clinician``: ``I <= max_ma``; ``I >= min_ma`` unless the slew or a safety limit acted;
* ``slew``: ``|I - I_prev| <= max_step_ma`` from pulse to pulse (a downward safety cut is
  applied at once; the first pulse ramps from the starting current, brought into
  ``[0, max_current_ma]``);
* ``charge_density``: ``I · PW <= q_max`` at the pulse's width;
* ``compliance``: ``I · Z <= V`` at the impedance the pulse saw;
* ``flags``: each pulse's current and flags equal the reference's, and a step's flags are the
  OR of its pulses';
* ``counts``: the episode's ``device_limits`` (scalar env) count every pulse a limit acted on.

Usage::

    python benchmarks/device_properties.py [--pulses 1000000] [--seed 0] [--out FILE]

Prints a table per env kind (pulses checked, steps, violations per check, which must all be 0,
and interventions per limit) and exits with status 1 if any violation was found.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

import gymnasium as gym
import numpy as np

import closedloop  # noqa: F401  (registers the suite)
from closedloop.device import LIMIT_FLAGS
from closedloop.envs.config import load_suite
from closedloop.envs.vector import ECAPVectorEnv

MODES = ("absolute", "incremental", "multiplicative")
SEQUENCES = ("random", "alternate", "extremes", "bursts", "hold_high")
CHECKS = ("hardware", "clinician", "slew", "charge_density", "compliance", "flags", "counts")
KINDS = ("scalar", "vector")
HARD = {
    "max_current_ma": 25.5,
    "max_step_ma": 1.0,
    "charge_density_limit_uc_per_cm2": 30.0,
    "contact_diameter_mm": 1.3,
    "compliance_v": 12.0,
}
"""The hard ceilings of the device settings (the checks use the tighter of these and the env's)."""
TIGHT = {
    "max_current_ma": 9.0,
    "max_step_ma": 0.35,
    "charge_density_limit_uc_per_cm2": 12.0,
    "compliance_v": 6.0,
}
"""Tightened settings that make every limit act often."""
TOL = 1e-9
VECTOR_ENVS = 4
"""Patients per native vector env."""
B, C, S, Q, V = LIMIT_FLAGS.values()


@dataclasses.dataclass
class Tally:
    """Pulses and steps checked, violations per check and interventions per limit."""

    pulses: int = 0
    steps: int = 0
    violations: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(CHECKS, 0))
    interventions: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(LIMIT_FLAGS, 0))
    examples: list = dataclasses.field(default_factory=list)

    def add(self, other: Tally) -> None:
        """Add ``other``'s numbers to this tally."""
        self.pulses += other.pulses
        self.steps += other.steps
        for mine, theirs in (
            (self.violations, other.violations),
            (self.interventions, other.interventions),
        ):
            for key, value in theirs.items():
                mine[key] += value
        self.examples.extend(other.examples[: max(0, 5 - len(self.examples))])

    def flag(self, check: str, bad: np.ndarray, where: str) -> None:
        """Count the True entries of ``bad`` as violations of ``check``."""
        n = int(np.count_nonzero(bad))
        if n:
            self.violations[check] += n
            if len(self.examples) < 5:
                self.examples.append(f"{check} at {where}: {n} pulse(s)")


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits each patient's pulses must respect, arrays over the patients (N,).

    ``qmax_uc`` is the device's charge limit per phase (µC) as the env computes it (so that the
    reference's flags can equal the env's at exact ties); ``qmax_hard_uc`` the Shannon ceiling
    for a 1.3 mm contact, computed independently (None: not checked).
    """

    min_ma: np.ndarray
    max_ma: np.ndarray
    qmax_uc: np.ndarray
    hw_ma: float
    step_ma: float
    compliance_v: float
    qmax_hard_uc: np.ndarray | None = None

    @classmethod
    def of(cls, spec, envs: list) -> Limits:
        """The limits of envs of ``spec`` (reset): their settings and the hard ceilings.

        Args:
            spec: The envs' :class:`~closedloop.envs.config.TaskSpec`.
            envs: Reset scalar envs, or a vector env's draws (:class:`~closedloop.envs.draw.
                Draw`): anything with the episode's ``patient`` and ``calibration``.
        """
        dev = spec.device
        length = np.array([e.patient.params.lead.contact_length_mm for e in envs])
        hard = HARD["charge_density_limit_uc_per_cm2"] * math.pi * HARD["contact_diameter_mm"]
        return cls(
            np.array([e.calibration.min_ma for e in envs]),
            np.array([e.calibration.max_ma for e in envs]),
            np.asarray(dev.max_charge_uc(length), np.float64),
            min(dev.max_current_ma, HARD["max_current_ma"]),
            min(dev.max_step_ma, HARD["max_step_ma"]),
            min(dev.compliance_v, HARD["compliance_v"]),
            hard * length / 100.0,
        )


def env_ids() -> list[str]:
    """Every registered ``closedloop/`` id, sorted."""
    return sorted(i for i in gym.registry if i.startswith("closedloop/"))


def vector_supported(env_id: str) -> bool:
    """Whether the vector checks run this id: not the pulse-shape or waveform variants.

    The native vector env serves every id; these checks assume the spec's fixed pulse width.
    """
    cfg = load_suite()[env_id].config
    return not (cfg.control_pw_rate or cfg.observe_waveform)


def action_sequence(kind: str, rng: np.random.Generator, n: int, shape: tuple) -> np.ndarray:
    """``n`` actions of ``shape`` (float32): random, ±1 alternation, extremes, bursts, high."""
    size = (n, *shape)
    if kind == "random":
        a = rng.uniform(-1.0, 1.0, size)
    elif kind == "alternate":
        a = np.where((np.arange(n) % 2 == 0).reshape(-1, *[1] * len(shape)), 1.0, -1.0)
        a = np.broadcast_to(a, size).copy()
    elif kind == "extremes":  # the corners, and values beyond them (the env clips)
        a = rng.choice([-5.0, -1.0, 1.0, 5.0, 0.0], size)
    elif kind == "bursts":  # runs of one extreme value, then of the other or rest
        runs = rng.integers(1, 30, n)
        values = rng.choice([-1.0, 1.0, 0.0], (n, *shape))
        a = np.repeat(values, runs, axis=0)[:n]
    else:  # hold_high: climb to the top of every window
        a = np.ones(size)
    return a.astype(np.float32)


def reference(requested, prev, pw_us, imp, min_ma, max_ma, qmax_uc, lim: Limits) -> tuple:
    """The five limits stated in NumPy for pulses (M,) given each one's predecessor's current.

    Returns:
        ``(current, flags)``, (M,): what each pulse should deliver and the limits that act.
    """
    anchor = np.clip(prev, 0.0, lim.hw_ma)
    stages = (
        (0.0, lim.hw_ma),
        (np.minimum(min_ma, lim.hw_ma), max_ma),
        (anchor - lim.step_ma, anchor + lim.step_ma),
        (-np.inf, qmax_uc / (pw_us * 1e-3)),
        (-np.inf, lim.compliance_v / imp * 1e3),
    )
    out, flags = np.asarray(requested, np.float64), np.zeros(np.shape(prev), np.int64)
    for bit, (lo, hi) in zip((B, C, S, Q, V), stages, strict=True):
        new = np.minimum(np.maximum(out, lo), hi)
        flags |= np.where(new != out, bit, 0)
        out = new
    return out, flags


def check_pulses(tally: Tally, p: dict, lim: Limits, where: str) -> np.ndarray:
    """Check pulses (M,) in delivery order against every limit; returns the reference flags.

    ``p`` holds per-pulse arrays: ``cur`` (mA), ``flags``, ``prev`` (the current of the pulse
    before, mA), ``requested`` (the step's request, mA), ``pw`` (µs), ``imp`` (Ω), ``min``,
    ``max`` (clinician window, mA), ``qmax`` (µC) and optionally ``qmax_hard`` (µC, the
    Shannon ceiling).
    """
    cur, flags, prev = p["cur"], p["flags"], p["prev"]
    tally.pulses += cur.size
    tally.flag("hardware", (cur < 0.0) | (cur > lim.hw_ma + TOL), where)
    ramping = (flags & (S | Q | V)) != 0
    low = (cur < p["min"] - TOL) & ~ramping
    tally.flag("clinician", (cur > p["max"] + TOL) | low, where)
    # The device anchors the slew at the previous current brought into its range: this only
    # matters for the episode's starting current (the calibrated comfort current, not a pulse),
    # which may lie above a tightened max_current_ma.
    change, cut = cur - np.clip(prev, 0.0, lim.hw_ma), (flags & (Q | V)) != 0
    tally.flag("slew", (change > lim.step_ma + TOL) | ((change < -lim.step_ma - TOL) & ~cut), where)
    charge = cur * p["pw"] * 1e-3
    over_hard = charge > p["qmax_hard"] + TOL if "qmax_hard" in p else False
    tally.flag("charge_density", (charge > p["qmax"] + TOL) | over_hard, where)
    tally.flag("compliance", cur * p["imp"] * 1e-3 > lim.compliance_v + TOL, where)
    ref_cur, ref_flags = reference(
        p["requested"], prev, p["pw"], p["imp"], p["min"], p["max"], p["qmax"], lim
    )
    tally.flag("flags", (flags != ref_flags) | (np.abs(cur - ref_cur) > TOL), where)
    for name, bit in LIMIT_FLAGS.items():
        tally.interventions[name] += int(np.count_nonzero(ref_flags & bit))
    return ref_flags


def _pulses(info: dict) -> tuple:
    """``(current, flags, impedance)`` of a step's pulses from its info, (N, P) (N: envs)."""
    if "pulse_current_ma" in info:
        keys = ("pulse_current_ma", "pulse_flags", "pulse_impedance_ohm")
        return tuple(np.atleast_2d(info[k]) for k in keys)
    keys = ("current_ma", "device_flags", "impedance_ohm")
    return tuple(np.reshape(info[k], (-1, 1)) for k in keys)


def _episode(steps: list, first: np.ndarray, lim: Limits) -> dict:
    """Per-pulse arrays (M,) of an episode from its steps' ``(cur, flags, imp, req, pw)``.

    Each step's arrays are (N, P); the result runs patient by patient, pulse by pulse, so that
    ``prev`` is the previous pulse's current (``first``, the starting current, for the first).
    """
    cur, flags, imp = (np.stack([s[i] for s in steps], axis=1) for i in range(3))  # (N, T, P)
    n, t, p = cur.shape
    per_step = [
        np.broadcast_to(np.reshape([s[i] for s in steps], (t, -1)).T[:, :, None], (n, t, p))
        for i in (3, 4)
    ]
    cur = cur.reshape(n, t * p)
    prev = np.concatenate((np.reshape(first, (n, 1)), cur[:, :-1]), axis=1)
    window = {
        k: np.broadcast_to(v[:, None], (n, t * p))
        for k, v in (
            ("min", lim.min_ma),
            ("max", lim.max_ma),
            ("qmax", lim.qmax_uc),
            ("qmax_hard", lim.qmax_hard_uc),
        )
        if v is not None
    }
    out = {
        "cur": cur,
        "flags": flags.reshape(n, t * p),
        "imp": imp.reshape(n, t * p),
        "prev": prev,
        "requested": per_step[0].reshape(n, t * p),
        "pw": per_step[1].reshape(n, t * p),
        **window,
    }
    return {k: np.ascontiguousarray(v).ravel() for k, v in out.items()}


def run_scalar(
    env_id: str,
    mode: str,
    sequence: str,
    seed: int,
    episode_s: float = 0.4,
    device: dict | None = None,
    actions: np.ndarray | None = None,
) -> Tally:
    """One episode of the scalar env (``gymnasium.make``), every pulse checked.

    ``seed`` seeds the reset and the action sequence; ``actions`` (steps, action size), if
    given, replaces the sequence (and may end before the episode; its counts are then not
    checked).
    """
    env = gym.make(env_id, action_mode=mode, episode_s=episode_s, **_device(device))
    u, tally = env.unwrapped, Tally()
    _, info = env.reset(seed=seed)
    lim, cfg = Limits.of(u.spec_, [u]), u.spec_.config
    first = prev = info["comfort_ma"]
    steps, step_bad = [], []
    if actions is None:
        shape = env.action_space.shape
        actions = action_sequence(sequence, np.random.default_rng(seed), _max_steps(cfg), shape)
    for a in np.asarray(actions, np.float32):
        requested = cfg.requested_ma(
            float(np.clip(a[0], -1.0, 1.0)), prev, lim.min_ma[0], lim.max_ma[0]
        )
        _, _, _, truncated, info = env.step(a)
        cur, flags, imp = _pulses(info)
        steps.append((cur, flags, imp, requested, info.get("pw_us", cfg.pw_us)))
        step_bad.append(
            info["device_flags"] != np.bitwise_or.reduce(flags, axis=None)
            or info["current_ma"] != cur[0, -1]
        )
        prev = info["current_ma"]
        if truncated:
            break
    tally.steps += len(steps)
    where = f"{env_id} {mode} {sequence} seed {seed} scalar"
    tally.flag("flags", np.array(step_bad), where)
    ref = check_pulses(tally, _episode(steps, np.array([first]), lim), lim, where)
    if truncated:
        counted = np.array([np.count_nonzero(ref & bit) for bit in LIMIT_FLAGS.values()])
        got = np.array([info["device_limits"][k] for k in LIMIT_FLAGS])
        tally.flag("counts", got != counted, where)
    env.close()
    return tally


def run_vector(
    env_id: str,
    mode: str,
    sequence: str,
    seed: int,
    episode_s: float = 0.4,
    device: dict | None = None,
    num_envs: int = VECTOR_ENVS,
    actions: np.ndarray | None = None,
) -> Tally:
    """One episode of the native vector env, every pulse of every patient checked.

    ``actions`` (steps, num_envs, 1), if given, replaces the sequence (as in :func:`run_scalar`).
    """
    venv = ECAPVectorEnv(num_envs, env_id, action_mode=mode, episode_s=episode_s, **_device(device))
    tally = Tally()
    venv.reset(seed=seed)
    draws = [s.draw for s in venv.slots]
    lim, cfg = Limits.of(venv.spec_, draws), venv.cfg
    first = prev = np.array([d.calibration.comfort_ma for d in draws])
    steps, step_bad = [], []
    if actions is None:
        shape = (num_envs, 1)
        actions = action_sequence(sequence, np.random.default_rng(seed), _max_steps(cfg), shape)
    for a in np.asarray(actions, np.float32):
        a0 = np.clip(a[:, 0].astype(np.float64), -1.0, 1.0)
        requested = cfg.requested_ma(a0, prev, lim.min_ma, lim.max_ma)
        _, _, _, truncated, info = venv.step(a)
        cur, flags, imp = _pulses(info)
        steps.append((cur, flags, imp, requested, np.full(num_envs, cfg.pw_us)))
        step_bad.append(
            (info["device_flags"] != np.bitwise_or.reduce(flags, axis=1))
            | (info["current_ma"] != cur[:, -1])
        )
        prev = info["current_ma"]
        if truncated.any():  # all patients end together (same duration and rate)
            break
    tally.steps += len(steps) * num_envs
    where = f"{env_id} {mode} {sequence} seed {seed} vector"
    tally.flag("flags", np.array(step_bad), where)
    check_pulses(tally, _episode(steps, first, lim), lim, where)
    venv.close()
    return tally


RESET_SEEDS = 6
"""Reset seeds per id, mode and kind in :func:`sweep`."""
MIN_EPISODES = 3 * len(SEQUENCES)
"""Episodes per id, mode and kind in :func:`sweep`, at least: every sequence with the default
and the tightened settings (every third episode)."""


def _actions(run, env_id: str, mode: str, sequence: str, seed: int, episode_s: float):
    """The action sequence of an episode of :func:`sweep` (seeded apart from its reset)."""
    cfg = load_suite()[env_id].config
    cfg = dataclasses.replace(cfg, episode_s=episode_s)
    shape = (3,) if cfg.control_pw_rate else (1,)
    if run is run_vector:
        shape = (VECTOR_ENVS, 1)
    return action_sequence(sequence, np.random.default_rng(seed), _max_steps(cfg), shape)


def _max_steps(cfg) -> int:
    """More steps than an episode can hold (the pulse-shape variant runs at up to 200 Hz)."""
    return int(cfg.episode_s * max(cfg.rate_hz, 200.0) / cfg.pulses_per_step) + 2


def _device(device: dict | None) -> dict:
    return {"device": dict(device)} if device else {}


def sweep(total_pulses: int, seed: int = 0, episode_s: float = 4.0, log=print) -> dict:
    """Run every id x mode x kind until ``total_pulses`` pulses are checked; tallies by kind.

    Each combination gets an equal share of the pulses, in episodes of at most ``episode_s``
    seconds, short enough for :data:`MIN_EPISODES` of them (a 1 kHz id's episodes are
    shorter), that cycle through :data:`SEQUENCES`, every third with the :data:`TIGHT`
    settings; the resets cycle through :data:`RESET_SEEDS` seeds (patients), so that their
    models are built once.
    """
    combos = [
        (i, m, k)
        for i in env_ids()
        for m in MODES
        for k in KINDS
        if k == "scalar" or vector_supported(i)
    ]
    per_combo = math.ceil(total_pulses / len(combos))
    tallies = {k: Tally() for k in KINDS}
    for n, (env_id, mode, kind) in enumerate(combos):
        done, episode = Tally(), 0
        cfg = load_suite()[env_id].config
        per_s = cfg.rate_hz * (VECTOR_ENVS if kind == "vector" else 1)
        length = min(episode_s, max(0.2, per_combo / (per_s * MIN_EPISODES)))
        while done.pulses < per_combo:
            sequence = SEQUENCES[episode % len(SEQUENCES)]
            device = TIGHT if episode % 3 == 2 else None
            run = run_scalar if kind == "scalar" else run_vector
            actions = _actions(run, env_id, mode, sequence, seed + 1000 * n + episode, length)
            reset_seed = seed + episode % RESET_SEEDS
            done.add(run(env_id, mode, sequence, reset_seed, length, device, actions=actions))
            episode += 1
        tallies[kind].add(done)
        log(
            f"  {env_id:38s} {mode:14s} {kind:6s} {done.pulses:8d} pulses, {episode:3d} "
            f"episodes, {sum(done.violations.values())} violations"
        )
    return tallies


def table(tallies: dict) -> str:
    """The results as a text table: one column per env kind and their total."""
    total = Tally()
    for t in tallies.values():
        total.add(t)
    cols = {**tallies, "total": total}
    rows = [("pulses checked", lambda t: t.pulses), ("steps", lambda t: t.steps)]
    rows += [(f"violations: {c}", lambda t, c=c: t.violations[c]) for c in CHECKS]
    rows += [
        (f"interventions: {name}", lambda t, name=name: t.interventions[name])
        for name in LIMIT_FLAGS
    ]
    lines = [f"{'':32s}" + "".join(f"{k:>14s}" for k in cols)]
    lines += [
        f"{label:32s}" + "".join(f"{get(t):14d}" for t in cols.values()) for label, get in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: run the sweep, print (and optionally save) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulses", type=int, default=1_000_000, help="pulses to check in all")
    parser.add_argument("--seed", type=int, default=0, help="base seed of the episodes")
    parser.add_argument("--episode-s", type=float, default=4.0, help="episode length (s)")
    parser.add_argument("--out", default="", help="also write the table to this file")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    tallies = sweep(args.pulses, args.seed, args.episode_s)
    total_violations = sum(sum(t.violations.values()) for t in tallies.values())
    text = (
        f"Device limits on every pulse: {len(env_ids())} ids x {len(MODES)} action modes x "
        f"scalar/vector env, sequences {', '.join(SEQUENCES)}; every third episode with "
        f"tightened settings {TIGHT}; episodes of at most {args.episode_s:g} s, at least "
        f"{MIN_EPISODES} per id, mode and kind (vector env: steps are counted per patient)\n"
        f"{table(tallies)}\n"
        f"total violations: {total_violations}; {time.perf_counter() - start:.0f} s"
    )
    for t in tallies.values():
        text += "".join(f"\n  e.g. {e}" for e in t.examples)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 1 if total_violations else 0


if __name__ == "__main__":
    sys.exit(main())
