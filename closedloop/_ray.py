"""Ray, the path beyond one machine: join or start a cluster and run tasks on it.

Ray is an optional extra (``pip install "closedloop[ray]"``), imported only here and only when
asked for. :func:`connect` starts or joins a Ray instance; :func:`ray_map` runs a function on
every item as a Ray task and yields the results as they finish, so the caller (the driver) can
write each one at once. Tasks lost with their worker process or node are run again by Ray (up
to ``max_retries`` times); an exception raised by the function itself is not retried and
reaches the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from closedloop._config import ConfigError, is_integer, short_repr

RAY_EXTRA = 'pip install "closedloop[ray]"'
"""How to install what ``--ray`` needs."""

MAX_RETRIES = 3
"""Default re-runs of a task whose worker process or node died (not of one that raised)."""

_ADDRESS = re.compile(r"^(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


def require_ray():
    """The ``ray`` module; ConfigError with the install command if the extra is missing."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def check_address(address: Any, name: str = "ray_address") -> str | None:
    """A Ray address: None (start or join a local instance), ``auto``, ``local`` or host:port.

    ``ray://host:port`` (Ray Client) is accepted too.

    Raises:
        ConfigError: Naming ``name`` if ``address`` is anything else.
    """
    if address is None or address in ("auto", "local"):
        return address
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise ConfigError(
            f"{name}={short_repr(address)} is invalid; valid: none (start or join a local "
            "Ray instance), 'auto', 'local', or HOST:PORT of a cluster's head (ray://HOST:PORT "
            "for Ray Client)"
        )
    return address


def check_ray(ray: Any, name: str = "ray") -> str | None:
    """The Ray address of ``ray`` (False: no Ray; True: local; a string: an address)."""
    if ray is False or ray is True:
        return None
    if not isinstance(ray, str):
        raise ConfigError(
            f"{name}={short_repr(ray)} is invalid; valid: False (local processes), True (start or "
            "join a local Ray instance) or the address of a Ray cluster (HOST:PORT, 'auto')"
        )
    return check_address(ray, name)


def check_retries(max_retries: Any, name: str = "max_retries") -> int:
    """``max_retries`` as an int in [0, 100]; ConfigError naming ``name`` otherwise."""
    if not is_integer(max_retries) or not 0 <= int(max_retries) <= 100:
        raise ConfigError(f"{name}={max_retries!r} is invalid; valid: an integer in [0, 100]")
    return int(max_retries)


def connect(address: str | None = None) -> int:
    """Join the Ray cluster at ``address`` (or start/join a local one); its CPU count.

    Nothing is done if this process is already connected (``ray.init`` was called, e.g. by a
    test or a script with its own options); the address is then ignored.

    Args:
        address: See :func:`check_address`. Without one, Ray joins the instance that
            ``RAY_ADDRESS`` or a ``ray start`` on this machine names, else starts one.

    Returns:
        CPUs of the cluster (at least 1), for sizing the work.
    """
    address = check_address(address)
    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING")
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def cluster_cpus() -> int:
    """CPUs of the Ray cluster this process is connected to (0 if it is not)."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return 0
    return int(ray.cluster_resources().get("CPU", 0))


def ray_map(
    fn: Callable[[Any], Any],
    items: Iterable,
    *,
    max_retries: int = MAX_RETRIES,
    progress: bool = False,
    desc: str = "",
    unit: str = "task",
    weights: Iterable[int] | None = None,
    nodes: dict[str, int] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Run ``fn(item)`` for every item as a Ray task (one CPU each); ``(index, result)`` pairs.

    Pairs come in the order the tasks finish, each once. The connection must exist
    (:func:`connect`). ``weights`` (episodes per item, say) advance the progress bar; ``nodes``,
    if given, is filled with node id -> sum of the weights of the items that node finished.

    Raises:
        ConfigError: If ``max_retries`` is out of range.
        ray.exceptions.RayError: If a task failed for good; results yielded before stay valid.
    """
    max_retries = check_retries(max_retries)
    ray = require_ray()
    from tqdm.auto import tqdm

    items = list(items)
    weights = [1] * len(items) if weights is None else list(weights)
    remote = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_on_node)
    index = {remote.remote(fn, item): i for i, item in enumerate(items)}
    pending = list(index)
    with tqdm(total=sum(weights), desc=desc, disable=not progress, unit=unit) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = index.pop(ref)
                node, result = ray.get(ref)
                if nodes is not None:
                    nodes[node] = nodes.get(node, 0) + weights[i]
                yield i, result
                bar.update(weights[i])


def _on_node(fn: Callable[[Any], Any], item: Any) -> tuple[str, Any]:
    """Inside a Ray task: ``(id of this node, fn(item))``."""
    import ray

    return ray.get_runtime_context().get_node_id(), fn(item)
