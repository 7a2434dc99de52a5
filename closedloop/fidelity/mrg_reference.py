"""Make the stored MRG reference: every MRG protocol, run in NEURON and written to one file.

:func:`make_reference` runs the protocols on MRG fibres in NEURON (the ``validate`` extra),
spread over worker processes (a fresh process per fibre, so no NEURON sections linger), merges
the threshold grids and writes ``closedloop/fidelity/data/mrg_reference.json`` atomically.
``benchmarks/mrg_reference.py`` and ``closedloop validate --rerun-mrg`` call it.

Sections of the file: ``meta``, ``thresholds`` (node under the electrode), ``thresholds_offset``
(source half an internode off the node), ``thresholds_heldout`` (points the fit never saw:
intermediate point-source settings and a tripolar guarded cathode), ``cv``, ``recovery``,
``sfap``, ``latency``, ``convergence``. Units are in the key names. The protocols are in
:mod:`~closedloop.fidelity.mrg_protocols` (thresholds), :mod:`~closedloop.fidelity.mrg_propagation`
(CV, SFAP, latency) and :mod:`~closedloop.fidelity.mrg_recovery`; each section's settings, jobs
and assembly in :mod:`~closedloop.fidelity.mrg_sections`.
"""

from __future__ import annotations

import datetime as _dt
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from closedloop._config import ConfigError
from closedloop._io import nan_to_none, write_text_atomic
from closedloop.fidelity import mrg_protocols as proto
from closedloop.fidelity.mrg import SIGMA_S_PER_M
from closedloop.fidelity.mrg_propagation import V_DETECT_MV
from closedloop.fidelity.mrg_sections import FULL, QUICK, SECTIONS, assemble, tasks

REFERENCE_PATH = Path(__file__).parent / "data" / "mrg_reference.json"
"""The stored reference (package data)."""

__all__ = ["FULL", "QUICK", "REFERENCE_PATH", "SECTIONS", "load_grids", "make_reference", "summary"]


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

        with ProcessPoolExecutor(
            processes, mp_context=mp.get_context("spawn"), max_tasks_per_child=1
        ) as pool:
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
            raise ConfigError(
                f"grids: cannot read {str(path)!r} ({exc}); valid: threshold-grid "
                "JSON files from mrg_protocols.threshold_grid"
            ) from None
        off = grid.get("offset_internodes") if isinstance(grid, dict) else None
        if off not in (0.0, 0.5) or "threshold_ma" not in grid:
            raise ConfigError(
                f"grids: {str(path)!r} is not a threshold grid with offset_internodes 0 or 0.5"
            )
        out["thresholds" if off == 0.0 else "thresholds_offset"] = {
            **grid,
            "source_file": str(path),
        }
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
    return {
        "model": "MRG_INTERPOLATION (PyFibers)",
        "pyfibers_version": pyfibers.__version__,
        "neuron_version": neuron.__version__,
        "temperature_c": 37.0,
        "sigma_s_per_m": SIGMA_S_PER_M,
        "medium": "homogeneous isotropic, point source",
        "dt_ms": proto.DT_MS,
        "length_mm": proto.LENGTH_MM,
        "ap_detect_mv": V_DETECT_MV,
        "quick": quick,
        "command": " ".join(sys.argv),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "section_commands": {
            **old.get("section_commands", {}),
            **{k: " ".join(sys.argv) for k in cfg},
        },
        "runtime_s": runtimes,
        "settings": {
            **old.get("settings", {}),
            **{
                k: {n: list(v) if isinstance(v, tuple) else v for n, v in c.items()}
                for k, c in cfg.items()
            },
        },
        "made_by": "closedloop.fidelity.mrg_reference.make_reference (benchmarks/mrg_reference.py)",
    }


def make_reference(
    out_path=None,
    sections=None,
    quick: bool = False,
    grids=(),
    processes: int = 2,
    progress: bool = True,
) -> dict:
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
    jobs = [(s, *t) for s in sections if s not in loaded for t in tasks(s, cfg[s])]
    jobs.sort(key=lambda j: j[0] != "recovery")  # the longest jobs first
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
            doc[s] = assemble(s, cfg[s], results[s])
    doc["meta"] = _meta(cfg, dict(runtime_s), quick, doc.get("meta", {}))
    doc["meta"]["last_run_wall_s"] = time.perf_counter() - t0
    doc = nan_to_none(doc)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_path, json.dumps(doc, indent=1) + "\n")
    return doc


def _fmt(x, spec=".3g") -> str:
    return "-" if x is None else format(x, spec)


def _threshold_lines(doc: dict) -> list[str]:
    """Summary lines of the threshold grid (distance slopes) and the held-out points."""
    lines = []
    if "thresholds" in doc:
        g = doc["thresholds"]
        d, th = np.asarray(g["distance_mm"]), np.asarray(g["threshold_ma"], float)
        near = (d >= 2.0) & (d <= 6.0)
        if near.sum() >= 2:
            k = g["pw_us"].index(100.0) if 100.0 in g["pw_us"] else 0
            sl = [proto.loglog_slope(d[near], th[i, near, k]) for i in range(len(g["diameter_um"]))]
            lines.append(
                f"threshold distance slope 2-6 mm, {g['pw_us'][k]:g} us, per D "
                f"{g['diameter_um']}: " + ", ".join(f"{s:.2f}" for s in sl)
            )
    if isinstance(doc.get("thresholds_heldout"), list):
        kinds = [p["configuration"] for p in doc["thresholds_heldout"]]
        lines.append(
            "held-out thresholds: "
            + ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
            + " points"
        )
    return lines


def _ap_lines(doc: dict) -> list[str]:
    """Summary lines of conduction velocity, recovery cycles and SFAP exponents."""
    lines = []
    if "cv" in doc:
        c = doc["cv"]
        lines.append(
            f"CV (dt->0) = {_fmt(c['fit_slope_m_s_per_um'], '.3f')} D + "
            f"{_fmt(c['fit_intercept_m_s'], '.2f')} m/s; per D: "
            + ", ".join(
                f"{d:g}:{v:.1f}" for d, v in zip(c["diameter_um"], c["cv_m_s_dt0"], strict=True)
            )
        )
    for c in doc.get("recovery", {}).get("curves", []):
        lines.append(
            f"recovery D={c['diameter_um']:g} um: ARP {_fmt(c['arp_ms'], '.3f')} ms, "
            f"RRP end {_fmt(c['rrp_end_ms'], '.2f')} ms, supernormal "
            f"{_fmt(c['supernormal_pct'], '.1f')} % at {_fmt(c['supernormal_ms'])} ms, "
            f"late subnormal {_fmt(c['subnormal_pct'], '+.1f')} % at "
            f"{_fmt(c['subnormal_ms'])} ms"
        )
    if "sfap" in doc:
        s = doc["sfap"]
        lines.append(
            "SFAP exponent vs D (p2p / N1) at "
            + ", ".join(
                f"{r:g} mm: {_fmt(a, '.2f')} / {_fmt(b, '.2f')}"
                for r, a, b in zip(s["radial_mm"], s["exponent_p2p"], s["exponent_n1"], strict=True)
            )
        )
    return lines


def _convergence_lines(doc: dict) -> list[str]:
    """Summary line of MRG's convergence in dt and fibre length."""
    lines = []
    if "convergence" in doc:
        c = doc["convergence"]
        i_dt, i_len = (
            c["dt_ms"].index(c["default_dt_ms"]),
            c["length_mm"].index(c["default_length_mm"]),
        )
        lines.append(
            "convergence, default vs finest dt / longest fibre: "
            + ", ".join(
                f"D={d:g}: {100 * a[i_dt]:+.2f} % / {100 * b[i_len]:+.2f} %"
                for d, a, b in zip(
                    c["diameter_um"], c["rel_change_vs_dt"], c["rel_change_vs_length"], strict=True
                )
            )
        )
    return lines


def summary(doc: dict) -> str:
    """A short text summary of a reference document."""
    lines = [*_threshold_lines(doc), *_ap_lines(doc), *_convergence_lines(doc)]
    rt = doc.get("meta", {}).get("runtime_s", {})
    lines.append(
        "runtime (s, summed over workers): " + ", ".join(f"{k} {v:.0f}" for k, v in rt.items())
    )
    return "\n".join(lines)
