"""A two-node Ray cluster on this machine: the benchmark grid spreads over both nodes, and one
node killed mid-run loses nothing and duplicates nothing."""

import json
import threading

import pytest

from closedloop._io import nan_to_none
from closedloop.evaluation import grid
from closedloop.evaluation.grid import run_grid

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

GRID = dict(
    controllers=["open-loop", "pid"],
    env_ids=["closedloop/ECAPTracking-Test-v0"],
    patients=[f"test-{i:03d}" for i in range(6)],
    seeds=[0],
    env_overrides={"episode_s": 30.0},
)


@pytest.fixture
def two_nodes():
    """A head node and a second node, one CPU each, and this process connected to them."""
    ray.shutdown()
    cluster = cluster_utils.Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    second = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, logging_level="WARNING")
    yield cluster, second
    ray.shutdown()
    cluster.shutdown()


def _without_wall_time(rows):
    """The rows without their timing, NaN as None (NaN != NaN)."""
    return nan_to_none([{k: v for k, v in r.items() if k != "wall_s"} for r in rows])


def _kill_when_both_nodes_delivered(cluster, node, placement, total, record):
    """Remove ``node`` (SIGKILL) once both nodes have finished an episode and some are left."""
    second = node.node_id
    while True:
        done = dict(placement)
        if len(done) == 2 and done.get(second, 0) >= 1:
            record["done_at_kill"] = sum(done.values())
            cluster.remove_node(node, allow_graceful=False)
            return
        if sum(done.values()) >= total:
            return
        threading.Event().wait(0.01)


def test_a_node_killed_mid_run_loses_and_duplicates_nothing(two_nodes, tmp_path, monkeypatch):
    cluster, second = two_nodes
    monkeypatch.setattr(grid, "MAX_BATCH", 1)  # twelve tasks: both nodes busy for a while
    placement, record = {}, {}
    killer = threading.Thread(
        target=_kill_when_both_nodes_delivered, args=(cluster, second, placement, 12, record)
    )
    killer.start()
    try:
        rows = run_grid(
            **GRID,
            ray=cluster.address,
            out_dir=tmp_path / "ray",
            progress=False,
            placement=placement,
            max_retries=3,
        )
    finally:
        killer.join()
    assert 2 <= record["done_at_kill"] < 12  # spread over both nodes, then killed mid-run
    assert second.node_id in placement and sum(placement.values()) == 12
    files = sorted((tmp_path / "ray" / "episodes").glob("*.json"))
    assert len(files) == 12 and len({r["episode"] for r in rows}) == 12
    local = run_grid(**GRID, workers=1, progress=False)
    assert _without_wall_time(rows) == _without_wall_time(local)
    on_disk = {json.loads(p.read_text())["row"]["episode"] for p in files}
    assert on_disk == {r["episode"] for r in local}
