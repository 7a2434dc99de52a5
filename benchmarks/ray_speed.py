"""What Ray costs and gives: the benchmark grid on local workers against Ray tasks.

Two parts, each timed from a clean run folder in this one process, one after the other:

* **overhead**: the suite's whole grid (``--suite``, default: the embedded default suite) on
  ``--cpus`` local worker processes, then on a local Ray instance with as many CPUs (Ray's start
  counted). The ratio is Ray's cost on one machine.
* **scaling**: a cut of the suite (``--patients`` patients, one seed) on 1 and ``--cpus`` local
  workers, Ray with 1 and ``--cpus`` CPUs, and a two-node Ray cluster on this machine
  (``ray.cluster_utils.Cluster``, one CPU per node): episodes per second against workers.

For every Ray run the driver's cost per result is measured: this process's CPU time
(``time.process_time``, Ray's client threads included) and the time spent writing episode files,
per episode. From the per-episode CPU cost and the driver's cost the script projects a 64-core
cluster: episodes per second, and the share of the driver's capacity that would take.

    python benchmarks/ray_speed.py                    # default suite: about 35 min on 2 cores
    python benchmarks/ray_speed.py --suite quick      # a few minutes
    python benchmarks/ray_speed.py --skip-overhead    # the scaling part only

Figures go to stdout and ``--out`` (markdown and JSON, default
``benchmarks/results/ray_speed.{md,json}``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

from closedloop._io import write_text_atomic
from closedloop.benchmark import SUITES, controllers_of, machine, patients_of
from closedloop.evaluation import grid

PROJECTED_CPUS = 64


def _timed_grid(suite, cpus: int, ray) -> dict:
    """Play ``suite``'s grid into a fresh folder: wall s, episodes, driver CPU and write s."""
    spent = {"write_s": 0.0}
    real_write = grid.write_episode

    def timed_write(*args, **kwargs):
        t = time.perf_counter()
        real_write(*args, **kwargs)
        spent["write_s"] += time.perf_counter() - t

    real_map = grid.ray_map

    def timed_map(*args, **kwargs):  # the driver's time handling each task's result
        for item in real_map(*args, **kwargs):
            t = time.perf_counter()
            yield item
            spent["handle_s"] += time.perf_counter() - t

    spent["handle_s"] = 0.0
    grid.write_episode, grid.ray_map = timed_write, timed_map
    out = Path(tempfile.mkdtemp(prefix="ray-speed-"))
    placement: dict[str, int] = {}
    cpu0, t0 = time.process_time(), time.perf_counter()
    try:
        rows = grid.run_grid(
            controllers_of(suite),
            list(suite.env_ids),
            patients_of(suite),
            list(suite.seeds),
            workers=cpus,
            progress=False,
            out_dir=out,
            env_overrides=dict(suite.env_overrides) or None,
            ray=ray,
            placement=placement if ray is not False else None,
        )
    finally:
        grid.write_episode, grid.ray_map = real_write, real_map
        shutil.rmtree(out, ignore_errors=True)
    wall = time.perf_counter() - t0
    n = len(rows)
    return {
        "episodes": n,
        "wall_s": wall,
        "episodes_per_s": n / wall,
        "driver_cpu_ms_per_episode": 1e3 * (time.process_time() - cpu0) / n,
        "write_ms_per_episode": 1e3 * spent["write_s"] / n,
        "handle_ms_per_episode": 1e3 * spent["handle_s"] / n,
        "nodes": len(placement) if ray is not False else 0,
    }


def _ray_run(suite, cpus: int, two_nodes: bool = False) -> dict:
    """The grid on a fresh Ray instance (``cpus`` CPUs, or two nodes of one), its start timed."""
    import ray

    ray.shutdown()
    cluster = None
    t0 = time.perf_counter()
    if two_nodes:
        from ray.cluster_utils import Cluster

        cluster = Cluster(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, logging_level="WARNING")
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    start_s = time.perf_counter() - t0
    try:
        res = _timed_grid(suite, cpus, True)
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    res["wall_s"] += start_s
    res["episodes_per_s"] = res["episodes"] / res["wall_s"]
    res["ray_start_s"] = start_s
    return res


def warm_up(suite) -> None:
    """Compile (or load) every kernel the suite needs once, so no timed run pays for it."""
    short = dataclasses.replace(suite, n_patients=1, seeds=(suite.seeds[0],))
    grid.run_grid(
        controllers_of(short),
        list(short.env_ids),
        patients_of(short),
        list(short.seeds),
        progress=False,
        env_overrides={"episode_s": 180.0},
    )


def overhead(suite, cpus: int) -> dict:
    """Local workers then Ray, same CPUs, the whole suite."""
    local = _timed_grid(suite, cpus, False)
    print(f"  local, {cpus} workers: {local['wall_s']:.1f} s", flush=True)
    on_ray = _ray_run(suite, cpus)
    print(f"  Ray, {cpus} CPUs: {on_ray['wall_s']:.1f} s", flush=True)
    return {"local": local, "ray": on_ray, "ratio": on_ray["wall_s"] / local["wall_s"]}


def scaling(suite, cpus: int) -> dict:
    """Episodes per second against workers, local and Ray, and on two Ray nodes."""
    runs = {}
    for k in sorted({1, cpus}):
        runs[f"local {k}"] = _timed_grid(suite, k, False)
        print(f"  local {k}: {runs[f'local {k}']['episodes_per_s']:.2f} episodes/s", flush=True)
        runs[f"Ray {k}"] = _ray_run(suite, k)
        print(f"  Ray {k}: {runs[f'Ray {k}']['episodes_per_s']:.2f} episodes/s", flush=True)
    runs["Ray two nodes x 1"] = _ray_run(suite, 2, two_nodes=True)
    print(f"  Ray 2 nodes: {runs['Ray two nodes x 1']['episodes_per_s']:.2f} ep/s", flush=True)
    return runs


def projection(runs: dict, cpus: int, driver: dict) -> dict:
    """A 64-core cluster from the per-episode CPU cost and the driver's cost per result.

    The driver's cost per result is its time handling one (writing the episode file, the
    progress bar, receiving the row) in ``driver``; its Ray client threads' CPU time grows with
    the run's wall time, not with results, and is reported as a share of one core.
    """
    best = runs[f"Ray {cpus}"]
    cpu_s_per_episode = cpus / best["episodes_per_s"]
    rate = PROJECTED_CPUS / cpu_s_per_episode
    capacity = 1e3 / driver["handle_ms_per_episode"]
    busy = driver["driver_cpu_ms_per_episode"] * driver["episodes"] / 1e3 / driver["wall_s"]
    return {
        "cpu_s_per_episode": cpu_s_per_episode,
        "episodes_per_s_at_64": rate,
        "driver_handle_ms_per_episode": driver["handle_ms_per_episode"],
        "driver_capacity_episodes_per_s": capacity,
        "driver_share_at_64": rate / capacity,
        "driver_cpu_share_of_a_core": busy,
    }


def markdown(doc: dict) -> str:
    """The figures as a markdown report."""
    lines = [
        "# Ray against local workers (benchmarks/ray_speed.py)",
        "",
        f"Machine: {doc['machine']['processor']}, {doc['machine']['cpus']} CPUs; "
        f"Ray {doc['ray_version']}." + (f" ({doc['reused']}.)" if "reused" in doc else ""),
        "",
    ]
    if "overhead" in doc:
        o = doc["overhead"]
        lines += [
            f"## Overhead: suite `{doc['suite']}`, {o['local']['episodes']} episodes, "
            f"{doc['cpus']} CPUs",
            "",
            "| run | wall s | episodes/s |",
            "|---|---:|---:|",
            f"| local workers | {o['local']['wall_s']:.1f} | {o['local']['episodes_per_s']:.2f} |",
            f"| Ray (start {o['ray']['ray_start_s']:.1f} s included) | {o['ray']['wall_s']:.1f} "
            f"| {o['ray']['episodes_per_s']:.2f} |",
            "",
            f"Ray / local wall time: **{o['ratio']:.3f}**.",
            "",
        ]
    if "scaling" in doc:
        s = doc["scaling"]
        lines += [
            f"## Scaling: {next(iter(s.values()))['episodes']} episodes",
            "",
            "| run | nodes | episodes/s |",
            "|---|---:|---:|",
        ]
        lines += [
            f"| {k} | {r['nodes'] or '-'} | {r['episodes_per_s']:.2f} |" for k, r in s.items()
        ]
    if "projection" in doc:
        p, d = doc["projection"], doc["driver"]
        lines += [
            "",
            f"## The driver: Ray, {doc['cpus']} CPUs, {d['episodes']} episodes",
            "",
            f"Handling one episode's result (receive, write `episodes/<key>.json`, progress): "
            f"**{p['driver_handle_ms_per_episode']:.2f} ms** ({d['write_ms_per_episode']:.2f} ms "
            f"of it writing the file); the driver process used "
            f"{100 * p['driver_cpu_share_of_a_core']:.1f} % of one core in all (Ray's client "
            "threads included).",
            "",
            f"Projection, {PROJECTED_CPUS} cores: {p['cpu_s_per_episode']:.2f} CPU s per episode "
            f"(Ray, {doc['cpus']} CPUs above) -> {p['episodes_per_s_at_64']:.1f} episodes/s; "
            f"the driver handles up to {p['driver_capacity_episodes_per_s']:.0f} results/s, so "
            f"it would be {100 * p['driver_share_at_64']:.1f} % busy.",
            "",
        ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=sorted(SUITES), default="default")
    ap.add_argument("--cpus", type=int, default=2, help="workers / Ray CPUs (default 2)")
    ap.add_argument("--patients", type=int, default=2, help="patients in the scaling part")
    ap.add_argument("--skip-overhead", action="store_true", help="only the scaling part")
    ap.add_argument("--out", default="benchmarks/results/ray_speed", help="output stem")
    ap.add_argument(
        "--reuse",
        metavar="JSON",
        help="take the overhead and scaling parts from an earlier run's JSON; run only the "
        "driver part",
    )
    args = ap.parse_args(argv)
    import ray

    suite = SUITES[args.suite]
    print("warm-up (numba cache)", flush=True)
    warm_up(suite)
    doc = {
        "suite": suite.name,
        "cpus": args.cpus,
        "machine": machine(),
        "ray_version": ray.__version__,
    }
    if not args.skip_overhead and not args.reuse:
        print(f"overhead, suite {suite.name}:", flush=True)
        doc["overhead"] = overhead(suite, args.cpus)
    if args.reuse:
        old = json.loads(Path(args.reuse).read_text())
        doc.update({k: old[k] for k in ("overhead", "scaling") if k in old})
        doc["reused"] = f"overhead and scaling from {args.reuse}"
    else:
        cut = dataclasses.replace(suite, n_patients=args.patients, seeds=(suite.seeds[0],))
        print(f"scaling, {args.patients} patients:", flush=True)
        doc["scaling"] = scaling(cut, args.cpus)
    one = dataclasses.replace(suite, n_patients=1, seeds=(suite.seeds[0],))
    print("driver cost, 1 patient:", flush=True)
    doc["driver"] = _ray_run(one, args.cpus)
    doc["projection"] = projection(doc["scaling"], args.cpus, doc["driver"])
    text = markdown(doc)
    print(text)
    write_text_atomic(Path(args.out + ".md"), text)
    write_text_atomic(Path(args.out + ".json"), json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
