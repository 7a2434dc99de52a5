"""Speed of the numba neural response model: pulses/s, scaling, JIT compile time, batching.

Usage (from the repository root, with the project's venv):

    python benchmarks/bench_neural.py                 # full run, a few minutes
    python benchmarks/bench_neural.py --quick         # smoke run, well under a minute of timing
    python benchmarks/bench_neural.py --json out.json # also write every figure as JSON
    python benchmarks/bench_neural.py --pool          # only section 6: pool mode on vs off

Every timed figure is the BEST of >= 3 repeats measured in this run (the median is shown too
where it helps, and every repeat is in the JSON); jobs that are compared are timed round-robin
and ratios compare figures from the same run, because the machine is shared and noisy (the
1-minute load average is printed at the start and the end). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np

from closedloop.neural import ModelParams, NeuralModel
from closedloop.neural.batch import run_pulses_batch, stack
from closedloop.neural.kernels import (
    PULSE_DTYPE,
    KernelState,
    PulseInputs,
    new_work,
    run_pulses_unshared,
)
from closedloop.neural.validation import check_inputs

REPO = Path(__file__).resolve().parents[1]
RATE_HZ, PW_US, CSF_MM = 50.0, 250.0, NeuralModel.default_csf_mm
CURRENTS_MA = (6.0, 12.0)
TARGET_MIN_PPS, TARGET_GOAL_PPS = 50_000, 200_000
TARGET_SPEEDUP = 30.0
TARGET_WARM_START_S = 2.0
N_PATIENTS = 8


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How much work each section does."""

    scalar_pulses: int  # section 1, pulses per measurement
    ref_pulses: int  # section 2, pulses per reference measurement
    cell_seconds: float  # section 3, target duration of one measurement
    fibre_counts: tuple  # section 3
    rates_hz: tuple  # section 3
    jit_repeats: int  # section 4, cold/warm subprocess pairs
    batch_pulses: int  # section 5, pulses per patient
    repeats: int  # repeats of every in-process measurement (>= 3)


FULL = Sizes(200_000, 300, 0.75, (1_000, 10_000, 100_000), (50.0, 1_000.0, 10_000.0), 3, 25_000, 5)
QUICK = Sizes(10_000, 30, 0.05, (1_000, 10_000), (50.0, 1_000.0, 10_000.0), 1, 1_000, 3)


# --- helpers ---------------------------------------------------------------------------------


Job = tuple[Callable[[], object], Callable[[], object] | None]


def timed(jobs: dict[str, Job], repeats: int) -> dict[str, tuple[list[float], object]]:
    """Time each ``(fn, setup)`` job ``repeats`` times, round-robin.

    Every round runs every job once (its ``setup()`` untimed, just before), so that background
    load on the shared machine falls on all compared jobs alike. Returns, per job, the wall
    times (s) and the last call's result.
    """
    res: dict[str, tuple[list[float], object]] = {name: ([], None) for name in jobs}
    for _ in range(repeats):
        for name, (fn, setup) in jobs.items():
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            result = fn()
            res[name][0].append(time.perf_counter() - t0)
            res[name] = (res[name][0], result)
    return res


def rate(times: list[float], n: int) -> dict:
    """Summary of ``n`` units of work timed ``times``: best (headline) and median."""
    return {
        "times_s": times,
        "best_s": min(times),
        "median_s": med(times),
        "pps_best": n / min(times),
        "pps_median": n / med(times),
    }


def med(xs: list[float]) -> float:
    return float(statistics.median(xs))


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Print a right-aligned plain-text table."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


def heading(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 86 - len(title)))


def verdict(value: float, minimum: float, goal: float | None = None) -> str:
    if goal is not None and value >= goal:
        return "meets goal"
    return "meets minimum" if value >= minimum else "BELOW minimum"


def train_inputs(current_ma: float, n: int, rate_hz: float = RATE_HZ) -> PulseInputs:
    """A regular train as validated, contiguous kernel inputs."""
    return PulseInputs(*check_inputs(current_ma, PW_US, CSF_MM, np.full(n, 1.0 / rate_hz)))


def copy_state(state: KernelState) -> KernelState:
    return KernelState(*(a.copy() for a in state))


def all_threads() -> int:
    return int(numba.config.NUMBA_NUM_THREADS)


def git_revision() -> str:
    try:
        run = functools.partial(
            subprocess.run, cwd=REPO, capture_output=True, text=True, check=True
        )
        rev = run(["git", "rev-parse", "--short", "HEAD"]).stdout.strip()
        dirty = run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), or '' if unavailable."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine_info() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "numba_threads": all_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "git": git_revision(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_avg_1m_start": load_avg(),
    }


def load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def print_machine(info: dict) -> None:
    heading("Machine")
    for key, value in info.items():
        print(f"  {key:18s} {value}")


# --- 1. scalar kernel on one core ------------------------------------------------------------


def bench_scalar(sizes: Sizes) -> dict:
    """Pulses/s of NeuralModel.pulse_train (default path, no waveforms) on one thread."""
    numba.set_num_threads(1)
    model = NeuralModel(seed=0)
    model.pulse_train(CURRENTS_MA[0], RATE_HZ, 10, pw_us=PW_US)  # warm-up: compile/load cache
    n = sizes.scalar_pulses
    reset = functools.partial(model.reset, 0)
    jobs = {
        str(cur): (functools.partial(model.pulse_train, cur, RATE_HZ, n, pw_us=PW_US), reset)
        for cur in CURRENTS_MA
    }
    res = {}
    for name, (times, rec) in timed(jobs, sizes.repeats).items():
        res[name] = {
            "pulses": n,
            **rate(times, n),
            "frac_recruited": float(rec["frac_recruited"].mean()),
            "ecap_uv": float(rec["ecap_uv"].mean()),
        }
    return res


def print_scalar(res: dict, repeats: int) -> None:
    heading(
        f"1. Scalar kernel, ONE thread: default patient (2048 fibres), {RATE_HZ:g} Hz, {PW_US:g} us"
    )
    print(
        "   NeuralModel(seed=0).pulse_train(...), ECAP amplitude per pulse, no waveforms, after "
        f"a warm-up call; best and median of {repeats} (currents interleaved)"
    )
    rows = [
        [
            f"{float(c):g}",
            f"{r['pulses']:,}",
            f"{100 * r['frac_recruited']:.1f}",
            f"{r['ecap_uv']:.1f}",
            f"{r['pps_best']:,.0f}",
            f"{r['pps_median']:,.0f}",
            f"{1e6 / r['pps_best']:.2f}",
            verdict(r["pps_best"], TARGET_MIN_PPS, TARGET_GOAL_PPS),
        ]
        for c, r in res.items()
    ]
    table(
        [
            "mA",
            "pulses",
            "recruited %",
            "mean ECAP uV",
            "pulses/s (best)",
            "pulses/s (median)",
            "us/pulse (best)",
            "target",
        ],
        rows,
    )
    print(
        f"   targets: minimum {TARGET_MIN_PPS:,} pulses/s, goal {TARGET_GOAL_PPS:,} pulses/s "
        "(judged on the best repeat)"
    )


# --- 2. NumPy reference ----------------------------------------------------------------------

KERNEL_INNER = 10
"""Section 2 times the kernel on this many back-to-back copies of the reference's job."""


def reference_jobs(model: NeuralModel, inputs: PulseInputs, ref_fn: Callable) -> dict:
    """Round-robin jobs: the reference once, the kernel KERNEL_INNER times, from rest."""
    n, wave, box = inputs.current_ma.size, np.empty((0, model.n_samples)), {}

    def setup_ref() -> None:
        box["ref_state"] = model.initial_state()

    def ref() -> np.ndarray:
        return ref_fn(box["ref_state"], model.tables, model.kparams, inputs)[0]

    def setup_ker() -> None:
        box["ker_states"] = [model.initial_state() for _ in range(KERNEL_INNER)]

    def ker() -> np.ndarray:
        for state in box["ker_states"]:
            out = np.empty(n, PULSE_DTYPE)
            run_pulses_unshared(state, model.tables, model.kparams, inputs, out, wave, model.work)
        return out

    return {"reference": (ref, setup_ref), "kernel": (ker, setup_ker)}


def bench_reference(sizes: Sizes, scalar: dict) -> dict | None:
    """The same 50 Hz trains through the NumPy reference and the kernel, from the same state."""
    try:
        from closedloop.neural.reference import run_pulses_reference
    except ImportError:
        return None
    numba.set_num_threads(1)
    model, n, res = NeuralModel(seed=0), sizes.ref_pulses, {}
    for cur in CURRENTS_MA:
        jobs = reference_jobs(model, train_inputs(cur, n), run_pulses_reference)
        out = timed(jobs, sizes.repeats)
        (t_ref, rec_ref), (t_ker, rec_ker) = out["reference"], out["kernel"]
        ref, ker = rate(t_ref, n), rate(t_ker, n * KERNEL_INNER)
        res[str(cur)] = {
            "pulses": n,
            "reference": ref,
            "kernel": ker,
            "speedup": ker["pps_best"] / ref["pps_best"],
            "speedup_vs_section1": scalar[str(cur)]["pps_best"] / ref["pps_best"],
            "bit_identical": rec_ref.tobytes() == rec_ker.tobytes(),
        }
    return res


def print_reference(res: dict | None, repeats: int) -> None:
    heading("2. NumPy reference (closedloop.neural.reference.run_pulses_reference), one thread")
    if res is None:
        print("   reference not available")
        return
    print(
        f"   the same {RATE_HZ:g} Hz trains from the resting state, reference and kernel "
        f"interleaved; best of {repeats} (kernel: {KERNEL_INNER} back-to-back runs per repeat)"
    )
    rows = [
        [
            f"{float(c):g}",
            f"{r['pulses']}",
            f"{r['reference']['pps_best']:,.0f}",
            f"{r['kernel']['pps_best']:,.0f}",
            f"{r['speedup']:.0f}x",
            f"{r['speedup_vs_section1']:.0f}x",
            "yes" if r["bit_identical"] else "NO",
            "meets" if r["speedup"] >= TARGET_SPEEDUP else "BELOW",
        ]
        for c, r in res.items()
    ]
    table(
        [
            "mA",
            "pulses",
            "reference pulses/s",
            "kernel pulses/s",
            "speed-up",
            "speed-up vs sec. 1",
            "records bit-identical",
            f"target >= {TARGET_SPEEDUP:g}x",
        ],
        rows,
    )
    print(
        "   speed-up = kernel/reference pulses/s on the same pulses; 'vs sec. 1' divides "
        "section 1's long-train rate instead"
    )


# --- 3. cost vs fibre count and pulse rate ---------------------------------------------------


def build_model(n_fibres: int) -> NeuralModel:
    """A default patient with ``n_fibres`` fibres, built with all threads."""
    numba.set_num_threads(all_threads())
    params = ModelParams().replace(population={"n_fibres": n_fibres})
    return NeuralModel(params, seed=0)


def grid_cell(model: NeuralModel, rate_hz: float, sizes: Sizes) -> dict:
    """Best-of-N cost of a 6 mA train at ``rate_hz``; the pulse count is scaled from a pilot run."""
    pilot_n = 20
    model.reset(0)
    t0 = time.perf_counter()
    model.pulse_train(CURRENTS_MA[0], rate_hz, pilot_n, pw_us=PW_US)
    per_pulse = (time.perf_counter() - t0) / pilot_n
    n = int(min(max(sizes.cell_seconds / per_pulse, 50), 1_000_000))
    run = functools.partial(model.pulse_train, CURRENTS_MA[0], rate_hz, n, pw_us=PW_US)
    times, rec = timed({"cell": (run, functools.partial(model.reset, 0))}, sizes.repeats)["cell"]
    us = 1e6 * min(times) / n
    return {
        "n_fibres": model.n_fibres,
        "rate_hz": rate_hz,
        "pulses": n,
        **rate(times, n),
        "us_per_pulse": us,
        "ns_per_fibre_pulse": 1e3 * us / model.n_fibres,
        "frac_recruited": float(rec["frac_recruited"].mean()),
    }


def bench_grid(sizes: Sizes) -> list[dict]:
    cells = []
    for n_fib in sizes.fibre_counts:
        t0 = time.perf_counter()
        model = build_model(n_fib)
        build_s = time.perf_counter() - t0
        numba.set_num_threads(1)
        for rate_hz in sizes.rates_hz:
            cells.append(grid_cell(model, rate_hz, sizes) | {"build_s": build_s})
        del model
    return cells


def print_grid(cells: list[dict], sizes: Sizes) -> None:
    heading(f"3. Cost vs fibre count x pulse rate, ONE thread, {CURRENTS_MA[0]:g} mA, {PW_US:g} us")
    print(
        f"   each cell ~{sizes.cell_seconds:g} s of pulses (count scaled from a 20-pulse pilot), "
        f"best of {sizes.repeats}; build = model construction, all threads"
    )
    rows = [
        [
            f"{c['n_fibres']:,}",
            f"{c['rate_hz']:,.0f}",
            f"{c['pulses']:,}",
            f"{100 * c['frac_recruited']:.2f}",
            f"{c['us_per_pulse']:,.1f}",
            f"{c['pps_best']:,.0f}",
            f"{c['ns_per_fibre_pulse']:.2f}",
            f"{c['build_s']:.1f}",
        ]
        for c in cells
    ]
    table(
        [
            "fibres",
            "rate Hz",
            "pulses",
            "recruited %",
            "us/pulse",
            "pulses/s",
            "ns/(fibre*pulse)",
            "build s",
        ],
        rows,
    )


# --- 4. JIT compile time ---------------------------------------------------------------------

CHILD = """
import json, time
t0 = time.perf_counter()
import closedloop, closedloop.neural
t1 = time.perf_counter()
model = closedloop.neural.NeuralModel(seed=0)
t2 = time.perf_counter()
model.pulse_train(6.0, 50.0, 1)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1, "first_pulse_s": t3 - t2}))
"""


def run_child(cache_dir: str) -> dict:
    """Run CHILD in a fresh interpreter with NUMBA_CACHE_DIR=cache_dir; add its wall time."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - t0
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["total_s"] = res["import_s"] + res["build_s"] + res["first_pulse_s"]
    res["process_wall_s"] = wall
    res["cache_files"] = sum(1 for _ in Path(cache_dir).rglob("*.nbc"))
    return res


def bench_jit(sizes: Sizes) -> dict:
    """Cold (empty cache dir) then warm (same dir) subprocess starts, ``jit_repeats`` pairs."""
    cold, warm = [], []
    for _ in range(sizes.jit_repeats):
        with tempfile.TemporaryDirectory(prefix="bench_numba_cache_") as cache_dir:
            cold.append(run_child(cache_dir))
            warm.append(run_child(cache_dir))
    keys = ("import_s", "build_s", "first_pulse_s", "total_s", "process_wall_s")
    return {
        name: {
            "runs": runs,
            **{k: min(r[k] for r in runs) for k in keys},
            "cache_files": runs[-1]["cache_files"],
        }
        for name, runs in (("cold", cold), ("warm", warm))
    }


def print_jit(res: dict, repeats: int) -> None:
    heading("4. Start-up and JIT compile time: fresh interpreter, NUMBA_CACHE_DIR = temp dir")
    print(
        f"   cold = empty cache dir, warm = same dir again; best of {repeats} pairs (each "
        "pair uses a new dir; best taken per column)"
    )
    rows = [
        [
            name,
            f"{r['import_s']:.2f}",
            f"{r['build_s']:.2f}",
            f"{r['first_pulse_s']:.2f}",
            f"{r['total_s']:.2f}",
            f"{r['process_wall_s']:.2f}",
            f"{r['cache_files']}",
        ]
        for name, r in res.items()
    ]
    table(
        [
            "cache",
            "(a) import s",
            "(b) model build s",
            "(c) first pulse s",
            "time to first pulse s",
            "process wall s",
            ".nbc files",
        ],
        rows,
    )
    warm = res["warm"]["total_s"]
    ok = "meets" if warm < TARGET_WARM_START_S else "MISSES"
    print(
        f"   time to first pulse = (a)+(b)+(c) in the child; warm: {warm:.2f} s, {ok} the "
        f"target < {TARGET_WARM_START_S:g} s. Cold compile happens in (b) (geometry tables) "
        "and (c) (pulse kernel)."
    )


# --- 5. batched kernel -----------------------------------------------------------------------


def batch_setup(n_pulses: int) -> tuple:
    """Per-patient (state, tables, kparams) of N_PATIENTS default patients; shared 6 mA inputs."""
    models = [NeuralModel(seed=s) for s in range(N_PATIENTS)]
    patients = [(m.initial_state(), m.tables, m.kparams) for m in models]
    return patients, train_inputs(CURRENTS_MA[0], n_pulses), models[0].n_samples


def run_loop(patients: list, inputs: PulseInputs, n_s: int) -> np.ndarray:
    """Scalar kernel called once per patient, from each patient's resting state."""
    out = np.empty((len(patients), inputs.current_ma.size), PULSE_DTYPE)
    wave = np.empty((0, n_s))
    work = new_work(
        patients[0][1].fibre_class.size,
        *patients[0][0].templates.shape,
        max(kparams.template_lag for _, _, kparams in patients),
    )
    for p, (state, tables, kparams) in enumerate(patients):
        run_pulses_unshared(copy_state(state), tables, kparams, inputs, out[p], wave, work)
    return out


def run_batch(stacked: tuple, inputs: PulseInputs, n_s: int) -> np.ndarray:
    """Batched kernel over all patients (prange), from the resting states."""
    state, tables, kparams = stacked
    n_pat, n_p = state.decay_ref.shape[0], inputs.current_ma.shape[1]
    out = np.empty((n_pat, n_p), PULSE_DTYPE)
    run_pulses_batch(copy_state(state), tables, kparams, inputs, out, np.empty((n_pat, 0, n_s)))
    return out


def bench_batch(sizes: Sizes) -> dict:
    patients, inputs, n_s = batch_setup(sizes.batch_pulses)
    stacked = tuple(stack(list(part)) for part in zip(*patients, strict=True))
    stacked_inputs = stack([inputs] * N_PATIENTS)
    warm_in = train_inputs(CURRENTS_MA[0], 2)
    run_loop(patients, warm_in, n_s)
    run_batch(stacked, stack([warm_in] * N_PATIENTS), n_s)
    numba.set_num_threads(all_threads())  # run_pulses itself is serial: the loop uses 1 thread
    res = timed(
        {
            "loop": (functools.partial(run_loop, patients, inputs, n_s), None),
            "batch": (functools.partial(run_batch, stacked, stacked_inputs, n_s), None),
        },
        sizes.repeats,
    )
    (t_loop, out_loop), (t_batch, out_batch) = res["loop"], res["batch"]
    total = N_PATIENTS * sizes.batch_pulses
    loop, batch = rate(t_loop, total), rate(t_batch, total)
    return {
        "patients": N_PATIENTS,
        "pulses_per_patient": sizes.batch_pulses,
        "threads": all_threads(),
        "loop": loop,
        "batch": batch,
        "speedup": batch["pps_best"] / loop["pps_best"],
        "bit_identical": out_loop.tobytes() == out_batch.tobytes(),
    }


def print_batch(res: dict, repeats: int) -> None:
    heading(
        f"5. Batched kernel: {res['patients']} patients x {res['pulses_per_patient']:,} "
        f"pulses, {CURRENTS_MA[0]:g} mA, {RATE_HZ:g} Hz"
    )
    print(
        f"   loop = run_pulses once per patient (serial, 1 thread); batch = run_pulses_batch "
        f"({res['threads']} threads); interleaved, best and median of {repeats}"
    )
    rows = [
        [
            name,
            threads,
            f"{r['pps_best']:,.0f}",
            f"{r['pps_median']:,.0f}",
            f"{r['pps_best'] / res['loop']['pps_best']:.2f}x",
        ]
        for name, threads, r in (
            ("loop of scalar calls", "1", res["loop"]),
            ("run_pulses_batch", str(res["threads"]), res["batch"]),
        )
    ]
    table(["path", "threads", "pulses/s (best)", "pulses/s (median)", "ratio (best)"], rows)
    print(
        f"   records bit-identical between the two paths: {'yes' if res['bit_identical'] else 'NO'}"
    )


# --- 6. pool mode ----------------------------------------------------------------------------

POOL_CURRENTS_MA = (5.0, 6.0, 12.0)
"""Section 6's currents: near a clinical target (about 55 and 135 of 2048 fibres) and high."""
POOL_SKIP = 100
"""Section 6 reads the ECAP's spread after this many pulses (2 s at 50 Hz)."""


def bench_pool(sizes: Sizes) -> dict:
    """Pulses/s and ECAP spread of the scalar kernel with ``pool_fraction`` off and on."""
    numba.set_num_threads(1)
    models = {
        pool: NeuralModel(ModelParams().replace(excitability={"pool_fraction": pool}), seed=0)
        for pool in (False, True)
    }
    for model in models.values():
        model.pulse_train(CURRENTS_MA[0], RATE_HZ, 10, pw_us=PW_US)  # compile/load cache
    n = max(sizes.scalar_pulses, 2 * POOL_SKIP)
    jobs = {
        (cur, pool): (
            functools.partial(m.pulse_train, cur, RATE_HZ, n, pw_us=PW_US),
            functools.partial(m.reset, 0),
        )
        for cur in POOL_CURRENTS_MA
        for pool, m in models.items()
    }
    timings = timed(jobs, sizes.repeats)
    res = {}
    for cur in POOL_CURRENTS_MA:
        row = {}
        for pool, name in ((False, "off"), (True, "on")):
            times, rec = timings[(cur, pool)]
            ecap = rec["ecap_true_uv"][POOL_SKIP:]
            row[name] = {
                **rate(times, n),
                "n_recruited": float(rec["n_recruited"].mean()),
                "ecap_true_uv": float(ecap.mean()),
                "ecap_cv": float(ecap.std() / ecap.mean()) if ecap.mean() > 0 else 0.0,
            }
        row["slowdown_best"] = row["off"]["pps_best"] / row["on"]["pps_best"]
        row["slowdown_median"] = row["off"]["pps_median"] / row["on"]["pps_median"]
        res[str(cur)] = {"pulses": n, **row}
    return res


def print_pool(res: dict, repeats: int) -> None:
    heading(
        f"6. Pool mode (excitability.pool_fraction) off vs on, ONE thread, {RATE_HZ:g} Hz, "
        f"{PW_US:g} us"
    )
    print(
        f"   default patient, the same trains interleaved, best and median of {repeats}; "
        f"noise-free ECAP mean and CV after the first {POOL_SKIP} pulses"
    )
    rows = []
    for cur, r in res.items():
        for name in ("off", "on"):
            m = r[name]
            rows.append(
                [
                    f"{float(cur):g}",
                    name,
                    f"{r['pulses']:,}",
                    f"{m['n_recruited']:.1f}",
                    f"{m['ecap_true_uv']:.1f}",
                    f"{100 * m['ecap_cv']:.2f}",
                    f"{m['pps_best']:,.0f}",
                    f"{m['pps_median']:,.0f}",
                    f"{r['slowdown_best']:.2f}x" if name == "on" else "",
                ]
            )
    table(
        [
            "mA",
            "pool",
            "pulses",
            "fibres fired",
            "ECAP uV",
            "ECAP CV %",
            "pulses/s (best)",
            "pulses/s (median)",
            "slowdown (best)",
        ],
        rows,
    )


# --- main ------------------------------------------------------------------------------------


def write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + os.replace)."""
    target = Path(path).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke version (less work)")
    ap.add_argument("--json", metavar="PATH", help="also write all figures to PATH as JSON")
    ap.add_argument("--pool", action="store_true", help="run only section 6 (pool mode on vs off)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    t_start = time.perf_counter()
    data = {"machine": machine_info(), "quick": args.quick, "sizes": dataclasses.asdict(sizes)}
    print_machine(data["machine"])
    if args.pool:
        return finish(args, data, sizes, t_start, pool_only=True)
    data["scalar"] = bench_scalar(sizes)
    print_scalar(data["scalar"], sizes.repeats)
    data["reference"] = bench_reference(sizes, data["scalar"])
    print_reference(data["reference"], sizes.repeats)
    data["grid"] = bench_grid(sizes)
    print_grid(data["grid"], sizes)
    data["jit"] = bench_jit(sizes)
    print_jit(data["jit"], sizes.jit_repeats)
    data["batch"] = bench_batch(sizes)
    print_batch(data["batch"], sizes.repeats)
    return finish(args, data, sizes, t_start)


def finish(
    args: argparse.Namespace, data: dict, sizes: Sizes, t_start: float, pool_only: bool = False
) -> int:
    """Run section 6, print the totals and write the JSON."""
    data["pool"] = bench_pool(sizes)
    print_pool(data["pool"], sizes.repeats)
    data["pool_only"] = pool_only
    data["elapsed_s"] = time.perf_counter() - t_start
    data["load_avg_1m_end"] = load_avg()
    print(
        f"\nTotal benchmark time {data['elapsed_s']:.0f} s; 1-minute load average at the end "
        f"{data['load_avg_1m_end']} (at the start {data['machine']['load_avg_1m_start']})"
    )
    if args.json:
        write_json(args.json, data)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
