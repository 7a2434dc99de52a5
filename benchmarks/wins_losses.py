"""Where a controller wins and loses against a baseline: posture steps, coughs, failure modes.

Plays both controllers on the same episodes (patients x seeds of an env, daily living by
default), splits each episode's pulses into what was happening (the seconds after a posture
step, around a cough, sneeze or bend, the rest), and reports per part the time in window, the
time below perception and the overstimulation events of each, with the paired difference over
episodes; then per failure mode of the cohort (target below perception, migrated lead, low SNR)
and the patients with the largest loss and gain, and draws the trace of the worst loss and the
best gain around the moment that decided it.

    python benchmarks/wins_losses.py --controller agents/zoo/residual-ppo \\
        --baseline clinical-loop --out benchmarks/results/wins_losses

Writes ``wins_losses.md``, ``wins_losses.json`` and ``trace_*.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from closedloop._io import nan_to_none, write_text_atomic
from closedloop.controllers.sources import build_controller, resolve_controller
from closedloop.envs.step_info import EVENT_NAMES
from closedloop.evaluation.batch_runner import run_episodes
from closedloop.evaluation.grid import resolve_patients
from closedloop.patients.cohort import load_cohort
from closedloop.patients.cohort_draw import CohortDistribution, therapy_flags

AFTER_POSTURE_S = 10.0
"""Seconds after a posture step that count as its transient (s)."""
AROUND_EVENT_S = 2.0
"""Seconds from the onset of a cough, sneeze or bend that count as it (s)."""
LOW_SNR = 3.0
"""Target ECAP / noise rms below this is the low-SNR failure mode."""
CHUNK = 8
"""Episodes per batch (each trajectory is reduced at once; an hour of pulses is ~20 MB)."""


def parts(t_s: np.ndarray, posture: np.ndarray, event: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pulse masks of an episode: posture steps, each event type, and the rest."""
    masks = {}
    steps = np.flatnonzero(np.diff(posture) != 0) + 1
    near = np.zeros(t_s.size, bool)
    for k in steps:
        near[k : k + int(np.searchsorted(t_s[k:], t_s[k] + AFTER_POSTURE_S))] = True
    masks["posture step (10 s after)"] = near
    taken = near.copy()
    for code, name in enumerate(EVENT_NAMES):
        if code == 0:
            continue
        onsets = np.flatnonzero((event == code) & np.r_[True, event[:-1] != code])
        m = np.zeros(t_s.size, bool)
        for k in onsets:
            m[k : k + int(np.searchsorted(t_s[k:], t_s[k] + AROUND_EVENT_S))] = True
        masks[f"{name} (2 s)"] = m & ~near
        taken |= m
    masks["steady (the rest)"] = ~taken
    return masks


def part_stats(traj) -> dict[str, dict[str, float]]:
    """Time in window, below perception and overstimulation onsets per part of an episode."""
    t, feel = np.asarray(traj.t_s), np.asarray(traj.sensation)
    lvl = np.broadcast_to(np.asarray(traj.discomfort_level, float), feel.shape)
    scored = t >= t[0] + float(traj.warmup_s)
    inside, below, above = (feel >= 1) & (feel < lvl), feel < 1, feel >= lvl
    onset = above & ~np.r_[False, above[:-1]]
    out = {}
    for name, m in parts(t, np.asarray(traj.posture), np.asarray(traj.event)).items():
        m = m & scored
        n = int(m.sum())
        out[name] = {
            "seconds": float(n / max(t.size, 1) * (t[-1] - t[0])),
            "in_window": float(inside[m].mean()) if n else float("nan"),
            "below": float(below[m].mean()) if n else float("nan"),
            "overstim_onsets": int(onset[m].sum()),
        }
    return out


def patient_modes(split: str) -> dict[str, list[str]]:
    """Failure modes of each cohort patient (target below perception, migrated, low SNR)."""
    from closedloop.patients.calibration_cache import patient_calibration

    out, d = {}, CohortDistribution()
    for i, p in enumerate(load_cohort(split)):
        modes = []
        if therapy_flags(split, i, d)[0]:
            modes.append("target below perception")
        if p.migration_mm > 0.0:
            modes.append("migrated lead")
        snr = patient_calibration(p).target_uv / p.params.recording.noise_uv_rms
        if snr < LOW_SNR:
            modes.append("low SNR")
        out[p.patient_id] = modes or ["none"]
    return out


def play(source, env_id: str, episodes: list, overrides: dict) -> list[dict]:
    """Each episode's metrics row and part statistics, in chunks of :data:`CHUNK`."""
    rows = []
    for i in range(0, len(episodes), CHUNK):
        chunk = episodes[i : i + CHUNK]
        for res in run_episodes(lambda: build_controller(source), env_id, chunk, overrides):
            rows.append({"row": res.row(), "parts": part_stats(res.trajectory)})
    return rows


def paired(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of ``a - b`` over the finite pairs and its 95 % bootstrap CI (NaN if none)."""
    d = (np.asarray(a, float) - np.asarray(b, float))[np.isfinite(a) & np.isfinite(b)]
    if d.size == 0:
        return (float("nan"),) * 3
    boot = rng.choice(d, (2000, d.size)).mean(axis=1)
    return float(d.mean()), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def summarise(mine: list, base: list, modes: dict, seed: int = 0) -> dict:
    """The paired tables: per part of the episodes, per failure mode and per patient."""
    rng = np.random.default_rng(seed)
    out: dict = {"parts": {}, "modes": {}, "patients": {}}
    for name in mine[0]["parts"]:
        for key in ("in_window", "below", "overstim_onsets"):
            a = np.array([e["parts"][name][key] for e in mine], float)
            b = np.array([e["parts"][name][key] for e in base], float)
            out["parts"].setdefault(name, {})[key] = {
                "controller": float(np.nanmean(a)),
                "baseline": float(np.nanmean(b)),
                "diff": paired(a, b, rng),
            }
        out["parts"][name]["seconds_per_episode"] = float(
            np.mean([e["parts"][name]["seconds"] for e in mine])
        )
    tiw = np.array([e["row"]["time_in_window_frac"] for e in mine])
    tiw_b = np.array([e["row"]["time_in_window_frac"] for e in base])
    charge = np.array([e["row"]["charge_per_pulse_uc"] for e in mine])
    charge_b = np.array([e["row"]["charge_per_pulse_uc"] for e in base])
    patients = [e["row"]["patient"] for e in mine]
    for mode in sorted({m for p in patients for m in modes[p]}):
        sel = np.array([mode in modes[p] for p in patients])
        out["modes"][mode] = {
            "patients": len({p for p, s in zip(patients, sel, strict=True) if s}),
            "tiw_diff": paired(tiw[sel], tiw_b[sel], rng),
            "charge_ratio": float(charge[sel].mean() / charge_b[sel].mean()),
        }
    for p in sorted(set(patients)):
        sel = np.array([q == p for q in patients])
        out["patients"][p] = {
            "tiw": float(tiw[sel].mean()),
            "tiw_baseline": float(tiw_b[sel].mean()),
            "charge_ratio": float(charge[sel].mean() / charge_b[sel].mean()),
            "modes": modes[p],
        }
    return out


def markdown(summary: dict, label: str, baseline: str, env_id: str, n: int) -> str:
    """The report's tables."""

    def f(mean, lo, hi):
        return "–" if not np.isfinite(mean) else f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"

    lines = [
        f"# Where {label} wins and loses against {baseline}",
        "",
        f"{env_id}, {n} episodes (patients x seeds), paired differences {label} - {baseline} "
        "with 95 % bootstrap CIs over episodes. Produced by `benchmarks/wins_losses.py`.",
        "",
        "## What was happening",
        "",
        "| part | s per episode | time in window | Δ | below perception | Δ | overstim "
        "onsets per episode | Δ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, p in summary["parts"].items():
        cells = [f"{p['seconds_per_episode']:.0f}"]
        for key in ("in_window", "below", "overstim_onsets"):
            a, b = p[key]["controller"], p[key]["baseline"]
            both = "–" if not np.isfinite(a) else f"{a:.3f} vs {b:.3f}"
            cells += [both, f(*p[key]["diff"])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Failure modes", "", "| mode | patients | Δ time in window | charge ratio |"]
    lines.append("|---|---|---|---|")
    for mode, m in summary["modes"].items():
        lines.append(
            f"| {mode} | {m['patients']} | {f(*m['tiw_diff'])} | {m['charge_ratio']:.3f} |"
        )
    ranked = sorted(
        summary["patients"].items(), key=lambda kv: kv[1]["tiw"] - kv[1]["tiw_baseline"]
    )
    lines += ["", "## Patients, largest loss first", ""]
    lines += [
        "| patient | modes | time in window | baseline | Δ | charge ratio |",
        "|---|---|---|---|---|---|",
    ]
    for pid, p in ranked:
        lines.append(
            f"| {pid} | {', '.join(p['modes'])} | {p['tiw']:.3f} | {p['tiw_baseline']:.3f} | "
            f"{p['tiw'] - p['tiw_baseline']:+.3f} | {p['charge_ratio']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def trace_figure(sources: dict, env_id: str, patient: str, seed: int, overrides: dict, path):
    """Sensation and current of both controllers in the minute where they differ most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trajs = {
        k: run_episodes(lambda s=s: build_controller(s), env_id, [(patient, seed)], overrides)[
            0
        ].trajectory
        for k, s in sources.items()
    }
    (ka, ta), (kb, tb) = trajs.items()
    t = np.asarray(ta.t_s)
    lvl = float(np.mean(ta.discomfort_level))
    ina = (np.asarray(ta.sensation) >= 1) & (np.asarray(ta.sensation) < lvl)
    inb = (np.asarray(tb.sensation) >= 1) & (np.asarray(tb.sensation) < lvl)
    per_s = max(int(round(1.0 / np.median(np.diff(t[:100])))), 1)
    gap = np.convolve(ina.astype(float) - inb, np.ones(60 * per_s), "valid")
    k = int(np.argmax(np.abs(gap)))
    sl = slice(k, k + 60 * per_s)
    fig, ax = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    for key, tr in trajs.items():
        ax[0].plot(t[sl], np.asarray(tr.sensation)[sl], lw=0.8, label=key)
        ax[1].plot(t[sl], np.asarray(tr.current_ma)[sl], lw=0.8, label=key)
    ax[0].axhspan(1.0, lvl, color="green", alpha=0.1, label="window")
    ax[0].set_yscale("symlog", linthresh=1.0)  # perception at 1, discomfort up to ~100x
    ax[0].set_ylabel("sensation (x perception, symlog)")
    ax[1].set_ylabel("current (mA)")
    ax[1].set_xlabel("time (s)")
    ax[0].legend(fontsize=8)
    ax[0].set_title(f"{patient} seed {seed}: the minute where the two differ most")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--controller", required=True, help="controller reference (as benchmark)")
    ap.add_argument("--baseline", default="clinical-loop")
    ap.add_argument("--env", default="closedloop/ECAPTracking-Test-v0")
    ap.add_argument("--patients", default="test", help="cohort split")
    ap.add_argument("--n-patients", type=int, default=0, help="first N patients (0: all)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--episode-s", type=float, default=0.0, help="0: the env's length (s)")
    ap.add_argument("--out", default="runs/wins-losses")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    label, source = resolve_controller(args.controller)
    base_label, base = resolve_controller(args.baseline)
    patients = resolve_patients(args.patients)[: args.n_patients or None]
    seeds = [int(s) for s in args.seeds.split(",")]
    episodes = [(p, s) for p in patients for s in seeds]
    overrides = {"episode_s": args.episode_s} if args.episode_s else {}
    mine, theirs = (play(src, args.env, episodes, overrides) for src in (source, base))
    summary = summarise(mine, theirs, patient_modes(args.patients))
    text = markdown(summary, label, base_label, args.env, len(episodes))
    ranked = sorted(
        summary["patients"].items(), key=lambda kv: kv[1]["tiw"] - kv[1]["tiw_baseline"]
    )
    for tag, (pid, _) in (("worst_loss", ranked[0]), ("best_gain", ranked[-1])):
        png = out / f"trace_{tag}.png"
        trace_figure({label: source, base_label: base}, args.env, pid, seeds[0], overrides, png)
        text += f"\n![{tag}: {pid}]({png.name})\n"
    write_text_atomic(out / "wins_losses.md", text)
    write_text_atomic(out / "wins_losses.json", json.dumps(nan_to_none(summary), indent=1))
    print(text)


if __name__ == "__main__":
    main()
