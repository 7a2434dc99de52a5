"""Make the stored MRG reference: every protocol of :mod:`closedloop.fidelity.mrg_protocols`.

:func:`make_reference` runs the protocols on MRG fibres in NEURON (the ``validate`` extra),
spread over worker processes (a fresh process per fibre, so no NEURON sections linger), merges
the threshold grids and writes ``closedloop/fidelity/data/mrg_reference.json`` atomically.
``benchmarks/mrg_reference.py`` and ``closedloop validate --rerun-mrg`` call it.

Sections of the file: ``meta``, ``thresholds`` (node under the electrode), ``thresholds_offset``
(source half an internode off the node), ``thresholds_heldout`` (points the fit never saw:
intermediate point-source settings and a tripolar guarded cathode), ``cv``, ``recovery``,
``sfap``, ``latency``, ``convergence``. Units are in the key names.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, write_text_atomic
from closedloop.fidelity import mrg_protocols as proto

REFERENCE_PATH = Path(__file__).parent / "data" / "mrg_reference.json"
SECTIONS = ("thresholds", "thresholds_offset", "thresholds_heldout", "cv", "recovery", "sfap",
            "latency", "convergence")
GRID_SECTIONS = ("thresholds", "thresholds_offset")
OFFSET_PWS_US = (100.0, 300.0)

FULL = {
    "thresholds": {"diameters_um": proto.DIAMETERS_UM, "distances_mm": proto.DISTANCES_MM,
                   "pws_us": proto.PWS_US},
    "thresholds_offset": {"diameters_um": proto.DIAMETERS_UM, "distances_mm": proto.DISTANCES_MM,
                          "pws_us": OFFSET_PWS_US},
    "thresholds_heldout": {
        "point": {"diameters_um": proto.HELDOUT_DIAMETERS_UM,
                  "distances_mm": proto.HELDOUT_DISTANCES_MM, "pws_us": proto.HELDOUT_PWS_US,
                  "offsets_internodes": proto.HELDOUT_OFFSETS},
        "tripolar": {"diameters_um": proto.TRIPOLE_DIAMETERS_UM,
                     "distances_mm": proto.TRIPOLE_DISTANCES_MM, "pws_us": proto.TRIPOLE_PWS_US,
                     "offsets_internodes": (0.0,)}},
    "cv": {"diameters_um": proto.DIAMETERS_UM, "dts_ms": proto.CV_DTS_MS},
    "recovery": {"diameters_um": proto.RECOVERY_DIAMETERS_UM,
                 "intervals_ms": proto.RECOVERY_INTERVALS_MS},
    "sfap": {"diameters_um": proto.DIAMETERS_UM, "distances_mm": proto.SFAP_DISTANCES_MM,
             "length_mm": proto.SFAP_LENGTH_MM},
    "latency": {"diameters_um": proto.LATENCY_DIAMETERS_UM, "pws_us": proto.LATENCY_PWS_US,
                "ratios": proto.LATENCY_RATIOS},
    "convergence": {"diameters_um": proto.CONV_DIAMETERS_UM, "dts_ms": proto.CONV_DTS_MS,
                    "lengths_mm": proto.CONV_LENGTHS_MM},
}
"""Protocol settings of the stored reference."""
QUICK = {
    "thresholds": {"diameters_um": (10.0,), "distances_mm": (2.0, 3.0), "pws_us": (100.0,)},
    "thresholds_offset": {"diameters_um": (10.0,), "distances_mm": (3.0,), "pws_us": (100.0,)},
    "thresholds_heldout": {
        "point": {"diameters_um": (9.3,), "distances_mm": (2.5,), "pws_us": (150.0,),
                  "offsets_internodes": (0.25,)},
        "tripolar": {"diameters_um": (10.0,), "distances_mm": (3.0,), "pws_us": (100.0,),
                     "offsets_internodes": (0.0,)}},
    "cv": {"diameters_um": (10.0,), "dts_ms": (0.005, 0.0025)},
    "recovery": {"diameters_um": (10.0,), "intervals_ms": (0.6, 1.0, 1.5, 2.0, 3.0, 5.0)},
    "sfap": {"diameters_um": (10.0, 16.0), "distances_mm": (1.0, 3.0), "length_mm": 40.0},
    "latency": {"diameters_um": (10.0,), "pws_us": (100.0,), "ratios": (1.02, 2.0)},
    "convergence": {"diameters_um": (10.0,), "dts_ms": (0.005, 0.0025),
                    "lengths_mm": (30.0, 60.0)},
}
"""A tiny version of every protocol (minutes on one core), for the slow test."""


def _heldout_tasks(cfg: dict) -> list[tuple[tuple, object, dict]]:
    """Jobs of ``thresholds_heldout``: one fibre per configuration, D, offset and length."""
    out = []
    for kind, c in cfg.items():
        for d, off in ((d, off) for d in c["diameters_um"] for off in c["offsets_internodes"]):
            long = [r for r in c["distances_mm"]
                    if kind == "tripolar" and r >= proto.TRIPOLE_LONG_FROM_MM]
            short = [r for r in c["distances_mm"] if r not in long]
            for rs, length in ((short, proto.LENGTH_MM), (long, proto.TRIPOLE_LONG_MM)):
                if rs:
                    out.append(((kind, d, off, length), proto.heldout_thresholds,
                                {"diameter_um": d, "configuration": kind, "distances_mm": rs,
                                 "pws_us": c["pws_us"], "offset_internodes": off,
                                 "length_mm": length}))
    return out


def _tasks(section: str, cfg: dict) -> list[tuple[tuple, object, dict]]:
    """Independent jobs of one section: ``(key, function, kwargs)``, one fibre each."""
    if section == "thresholds_heldout":
        return _heldout_tasks(cfg)
    D = cfg["diameters_um"]
    if section in GRID_SECTIONS:
        off = 0.5 if section == "thresholds_offset" else 0.0
        return [((d,), proto.thresholds_for_diameter,
                 {"diameter_um": d, "distances_mm": cfg["distances_mm"],
                  "pws_us": cfg["pws_us"], "offset_internodes": off}) for d in D]
    if section == "cv":
        return [((d,), proto.cv_for_diameter, {"diameter_um": d, "dts_ms": cfg["dts_ms"]})
                for d in D]
    if section == "recovery":
        return [((d,), proto.recovery_cycle,
                 {"diameter_um": d, "intervals_ms": cfg["intervals_ms"]}) for d in D]
    if section == "sfap":
        return [((d,), proto.sfap_for_diameter,
                 {"diameter_um": d, "distances_mm": cfg["distances_mm"],
                  "length_mm": cfg["length_mm"]}) for d in D]
    if section == "latency":
        return [((d,), proto.latency_for_diameter, {"diameter_um": d, "pws_us": cfg["pws_us"],
                                                "ratios": cfg["ratios"]}) for d in D]
    points = {(d, dt, proto.LENGTH_MM) for d in D for dt in cfg["dts_ms"]}
    points |= {(d, proto.DT_MS, L) for d in D for L in cfg["lengths_mm"]}
    return [(p, proto.convergence_point, {"diameter_um": p[0], "dt_ms": p[1], "length_mm": p[2]})
            for p in sorted(points)]


def _timed(fn, kwargs: dict):
    """Run ``fn(**kwargs)`` and return ``(result, wall time in s)`` (in a worker process)."""
    t0 = time.perf_counter()
    return fn(**kwargs), time.perf_counter() - t0


def _run_jobs(jobs: list, processes: int, progress: bool) -> list:
    """Run ``(section, key, fn, kwargs)`` jobs; ``[(section, key, result, seconds)]``."""
    bar = _progress_bar(len(jobs), progress)
    out = []
    if processes <= 1:
        for sec, key, fn, kw in jobs:
            out.append((sec, key, *_timed(fn, kw)))
            bar.update(1)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(processes, mp_context=mp.get_context("spawn"),
                                 max_tasks_per_child=1) as pool:
            futures = {pool.submit(_timed, fn, kw): (sec, key) for sec, key, fn, kw in jobs}
            for fut in as_completed(futures):
                out.append((*futures[fut], *fut.result()))
                bar.update(1)
    bar.close()
    return out


def _progress_bar(total: int, enabled: bool):
    """A tqdm bar (a silent stand-in when disabled or tqdm is missing)."""
    class _Silent:
        def update(self, n):
            pass

        def close(self):
            pass
    if not enabled:
        return _Silent()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return _Silent()
    return tqdm(total=total, desc="MRG reference", unit="fibre", file=sys.stderr)


def _assemble_grid(cfg: dict, res: dict, offset: float) -> dict:
    return {"diameter_um": list(cfg["diameters_um"]), "distance_mm": list(cfg["distances_mm"]),
            "pw_us": list(cfg["pws_us"]), "offset_internodes": offset,
            "threshold_ma": [res[(d,)] for d in cfg["diameters_um"]]}


def _assemble_cv(cfg: dict, res: dict) -> dict:
    D = list(cfg["diameters_um"])
    cv0 = [res[(d,)]["cv_dt0_m_per_s"] for d in D]
    a, b = np.polyfit(D, cv0, 1) if len(D) > 1 else (math.nan, math.nan)
    cv = [res[(d,)]["cv_m_per_s"] for d in D]
    k1, k2 = np.argsort(cfg["dts_ms"])[:2]          # the two finest steps
    ratio = cfg["dts_ms"][k2] / cfg["dts_ms"][k1]
    rich = [(ratio * c[k1] - c[k2]) / (ratio - 1.0) for c in cv] if len(cv[0]) > 1 else cv0
    return {"diameter_um": D, "dt_ms": list(cfg["dts_ms"]), "cv_m_s": cv, "cv_m_s_dt0": cv0,
            "cv_m_s_richardson": rich,
            "fit_slope_m_s_per_um": float(a), "fit_intercept_m_s": float(b),
            "length_mm": proto.LENGTH_MM,
            "method": "AP started by a 10 nA, 0.1 ms intracellular pulse at node 2; CV = "
                      "distance / time between the -30 mV crossings (interpolated) at the "
                      "nodes at 25 % and 75 % of the fibre; dt -> 0 by the intercept of a "
                      "linear least-squares fit of CV on dt (cv_m_s_richardson: first-order "
                      "Richardson extrapolation from the two finest steps, for comparison); "
                      "then CV = a D + b over D (least squares)"}


def _assemble_recovery(cfg: dict, res: dict) -> dict:
    return {"pw_us": proto.RECOVERY_PW_US, "distance_mm": proto.RECOVERY_DISTANCE_MM,
            "conditioning_ratio": proto.RECOVERY_CONDITIONING,
            "max_test_ratio": proto.RECOVERY_MAX_RATIO, "dt_ms": proto.DT_MS,
            "length_mm": proto.LENGTH_MM,
            "curves": [res[(d,)] for d in cfg["diameters_um"]],
            "method": "cathodic monophasic point source; conditioning pulse at 2x the resting "
                      "threshold at t = 0; test threshold (0.1 % bisection) = smallest test "
                      "current giving a second AP at the node 8 nodes from the centre; null: "
                      "none up to 10x (absolutely refractory); ARP by bisection on the "
                      "interval at 10x to 0.02 ms (midpoint of arp_bracket_ms)"}


def _assemble_sfap(cfg: dict, res: dict) -> dict:
    D, r = list(cfg["diameters_um"]), list(cfg["distances_mm"])
    n1 = [res[(d,)]["n1_uv"] for d in D]
    p2p = [res[(d,)]["p2p_uv"] for d in D]
    slope = (lambda y: [proto.loglog_slope(D, np.abs(np.asarray(y)[:, k])) for k in range(len(r))]
             ) if len(D) > 1 else (lambda y: [math.nan] * len(r))
    return {"diameter_um": D, "radial_mm": r, "n1_uv": n1, "p2p_uv": p2p,
            "exponent_n1": slope(n1), "exponent_p2p": slope(p2p),
            "length_mm": cfg["length_mm"], "dt_ms": proto.SFAP_DT_MS,
            "sigma_s_per_m": proto.SIGMA_S_PER_M,
            "method": "i_membrane_ of every section as a point source at its centre "
                      "(phi = sum I / (4 pi sigma r)), electrode opposite the centre node; "
                      "N1 and peak-to-peak while the AP runs between the nodes at 20 % and "
                      "80 % of the fibre; exponent: log-log slope of |value| on D"}


def _assemble_latency(cfg: dict, res: dict) -> dict:
    D = list(cfg["diameters_um"])
    return {"diameter_um": D, "pw_us": list(cfg["pws_us"]), "current_ratio": list(cfg["ratios"]),
            "distance_mm": proto.LATENCY_DISTANCE_MM,
            "threshold_ma": [res[(d,)]["threshold_ma"] for d in D],
            "ap_time_centre_ms": [res[(d,)]["t_centre_ms"] for d in D],
            "ap_time_far_ms": [res[(d,)]["t_far_ms"] for d in D],
            "far_node_mm": [res[(d,)]["far_node_mm"] for d in D],
            "method": "AP time = -30 mV crossing (APCount, time-step resolution) after the "
                      "onset of a cathodic monophasic pulse, at the centre node (under the "
                      "electrode) and at the node about 10 mm away"}


def _assemble_convergence(cfg: dict, res: dict) -> dict:
    D, dts, lens = cfg["diameters_um"], cfg["dts_ms"], cfg["lengths_mm"]
    by_dt = [[res[(d, dt, proto.LENGTH_MM)] for dt in dts] for d in D]
    by_len = [[res[(d, proto.DT_MS, L)] for L in lens] for d in D]
    i_fine, i_long = int(np.argmin(dts)), int(np.argmax(lens))
    return {"diameter_um": list(D), "distance_mm": proto.CONV_DISTANCE_MM,
            "pw_us": proto.CONV_PW_US,
            "default_dt_ms": proto.DT_MS, "default_length_mm": proto.LENGTH_MM,
            "dt_ms": list(dts), "threshold_vs_dt_ma": by_dt,
            "rel_change_vs_dt": [proto.relative_changes(row, row[i_fine]) for row in by_dt],
            "length_mm": list(lens), "threshold_vs_length_ma": by_len,
            "threshold_resolution_rel": proto.CONV_REL_TOL,
            "rel_change_vs_length": [proto.relative_changes(row, row[i_long]) for row in by_len]}


def _assemble_heldout(cfg: dict, res: dict) -> list[dict]:
    """All held-out points, ordered by configuration, D, offset, distance and pulse width."""
    del cfg
    pts = [p for key in res for p in res[key]]
    return sorted(pts, key=lambda p: (p["configuration"], p["diameter_um"],
                                      p["offset_internodes"], p["distance_mm"], p["pw_us"]))


def _assemble(section: str, cfg: dict, res: dict) -> dict | list:
    if section == "thresholds_heldout":
        return _assemble_heldout(cfg, res)
    if section in GRID_SECTIONS:
        return _assemble_grid(cfg, res, 0.5 if section == "thresholds_offset" else 0.0)
    return {"cv": _assemble_cv, "recovery": _assemble_recovery, "sfap": _assemble_sfap,
            "latency": _assemble_latency, "convergence": _assemble_convergence
            }[section](cfg, res)


def load_grids(paths) -> dict:
    """Threshold grids written by :func:`~closedloop.fidelity.mrg_protocols.threshold_grid`.

    Args:
        paths: JSON files; a grid with ``offset_internodes`` 0 becomes ``thresholds``, 0.5
            ``thresholds_offset``.

    Returns:
        ``{section: grid}``.

    Raises:
        ConfigError: If a file is missing, not a grid, or has another offset.
    """
    out = {}
    for path in paths:
        try:
            grid = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"grids: cannot read {str(path)!r} ({exc}); valid: threshold-grid "
                              "JSON files from mrg_protocols.threshold_grid") from None
        off = grid.get("offset_internodes") if isinstance(grid, dict) else None
        if off not in (0.0, 0.5) or "threshold_ma" not in grid:
            raise ConfigError(f"grids: {str(path)!r} is not a threshold grid with "
                              "offset_internodes 0 or 0.5")
        out["thresholds" if off == 0.0 else "thresholds_offset"] = {**grid,
                                                                    "source_file": str(path)}
    return out


def _check_sections(sections) -> tuple[str, ...]:
    if sections is None:
        return SECTIONS
    sections = (sections,) if isinstance(sections, str) else tuple(sections)
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise ConfigError(f"sections={bad!r} unknown; valid: {', '.join(SECTIONS)}")
    return sections


def _meta(cfg: dict, runtime_s: dict, quick: bool, old: dict) -> dict:
    """Versions, model, settings, command, date and the runtime of every section."""
    import neuron
    import pyfibers

    runtimes = {**old.get("runtime_s", {}), **runtime_s}
    return {"model": "MRG_INTERPOLATION (PyFibers)", "pyfibers_version": pyfibers.__version__,
            "neuron_version": neuron.__version__, "temperature_c": 37.0,
            "sigma_s_per_m": proto.SIGMA_S_PER_M, "medium": "homogeneous isotropic, point source",
            "dt_ms": proto.DT_MS, "length_mm": proto.LENGTH_MM, "ap_detect_mv": proto.V_DETECT_MV,
            "quick": quick, "command": " ".join(sys.argv),
            "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "section_commands": {**old.get("section_commands", {}),
                                 **{k: " ".join(sys.argv) for k in cfg}},
            "runtime_s": runtimes, "settings": {**old.get("settings", {}), **{
                k: {n: list(v) if isinstance(v, tuple) else v for n, v in c.items()}
                for k, c in cfg.items()}},
            "made_by": "closedloop.fidelity.mrg_reference.make_reference "
                       "(benchmarks/mrg_reference.py)"}


def make_reference(out_path=None, sections=None, quick: bool = False, grids=(),
                   processes: int = 2, progress: bool = True) -> dict:
    """Run the MRG protocols and write the reference file (merged into an existing one).

    Args:
        out_path: Output JSON (default: the package's ``data/mrg_reference.json``). Sections
            not rerun are kept from an existing file there.
        sections: Section names to run (default: all of :data:`SECTIONS`).
        quick: Tiny protocols (:data:`QUICK`), for tests; write to a scratch ``out_path``.
        grids: Threshold-grid JSON files merged instead of rerunning the grid sections.
        processes: Worker processes (one NEURON fibre each).
        progress: Show a tqdm progress bar.

    Returns:
        The reference document as written.

    Raises:
        ConfigError: For an unknown section, a bad grid file or ``processes`` < 1.
    """
    sections = _check_sections(sections)
    if not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"processes={processes!r} must be an integer >= 1")
    out_path = Path(out_path) if out_path is not None else REFERENCE_PATH
    loaded = load_grids(grids)
    doc = json.loads(out_path.read_text(encoding="utf-8")) if out_path.exists() else {}
    settings = QUICK if quick else FULL
    cfg = {s: settings[s] for s in sections}
    jobs = [(s, *t) for s in sections if s not in loaded for t in _tasks(s, cfg[s])]
    jobs.sort(key=lambda j: j[0] != "recovery")            # the longest jobs first
    t0 = time.perf_counter()
    results: dict = defaultdict(dict)
    runtime_s: dict = defaultdict(float)
    for sec, key, res, secs in _run_jobs(jobs, processes, progress):
        results[sec][key] = res
        runtime_s[sec] += secs
    for s in sections:
        if s in loaded:
            doc[s] = loaded[s]
            cfg[s] = {"from_file": loaded[s]["source_file"]}
        else:
            doc[s] = _assemble(s, cfg[s], results[s])
    doc["meta"] = _meta(cfg, dict(runtime_s), quick, doc.get("meta", {}))
    doc["meta"]["last_run_wall_s"] = time.perf_counter() - t0
    doc = nan_to_none(doc)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_path, json.dumps(doc, indent=1) + "\n")
    return doc


def _fmt(x, spec=".3g") -> str:
    return "-" if x is None else format(x, spec)


def summary(doc: dict) -> str:
    """A short text summary of a reference document."""
    lines = []
    if "thresholds" in doc:
        g = doc["thresholds"]
        d, th = np.asarray(g["distance_mm"]), np.asarray(g["threshold_ma"], float)
        near = (d >= 2.0) & (d <= 6.0)
        if near.sum() >= 2:
            k = g["pw_us"].index(100.0) if 100.0 in g["pw_us"] else 0
            sl = [proto.loglog_slope(d[near], th[i, near, k]) for i in range(len(g["diameter_um"]))]
            lines.append(f"threshold distance slope 2-6 mm, {g['pw_us'][k]:g} us, per D "
                         f"{g['diameter_um']}: " + ", ".join(f"{s:.2f}" for s in sl))
    if isinstance(doc.get("thresholds_heldout"), list):
        kinds = [p["configuration"] for p in doc["thresholds_heldout"]]
        lines.append("held-out thresholds: " + ", ".join(
            f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds)) + " points")
    if "cv" in doc:
        c = doc["cv"]
        lines.append(f"CV (dt->0) = {_fmt(c['fit_slope_m_s_per_um'], '.3f')} D + "
                     f"{_fmt(c['fit_intercept_m_s'], '.2f')} m/s; per D: "
                     + ", ".join(f"{d:g}:{v:.1f}" for d, v in zip(c["diameter_um"],
                                                                  c["cv_m_s_dt0"], strict=True)))
    for c in doc.get("recovery", {}).get("curves", []):
        lines.append(f"recovery D={c['diameter_um']:g} um: ARP {_fmt(c['arp_ms'], '.3f')} ms, "
                     f"RRP end {_fmt(c['rrp_end_ms'], '.2f')} ms, supernormal "
                     f"{_fmt(c['supernormal_pct'], '.1f')} % at {_fmt(c['supernormal_ms'])} ms, "
                     f"late subnormal {_fmt(c['subnormal_pct'], '+.1f')} % at "
                     f"{_fmt(c['subnormal_ms'])} ms")
    if "sfap" in doc:
        s = doc["sfap"]
        lines.append("SFAP exponent vs D (p2p / N1) at " + ", ".join(
            f"{r:g} mm: {_fmt(a, '.2f')} / {_fmt(b, '.2f')}"
            for r, a, b in zip(s["radial_mm"], s["exponent_p2p"], s["exponent_n1"],
                               strict=True)))
    if "convergence" in doc:
        c = doc["convergence"]
        i_dt, i_len = c["dt_ms"].index(c["default_dt_ms"]), c["length_mm"].index(
            c["default_length_mm"])
        lines.append("convergence, default vs finest dt / longest fibre: " + ", ".join(
            f"D={d:g}: {100 * a[i_dt]:+.2f} % / {100 * b[i_len]:+.2f} %" for d, a, b in
            zip(c["diameter_um"], c["rel_change_vs_dt"], c["rel_change_vs_length"],
                strict=True)))
    rt = doc.get("meta", {}).get("runtime_s", {})
    lines.append("runtime (s, summed over workers): "
                 + ", ".join(f"{k} {v:.0f}" for k, v in rt.items()))
    return "\n".join(lines)
