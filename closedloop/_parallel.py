"""Local parallelism: an ordered process-pool map with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from closedloop._config import ConfigError, is_integer

MAX_WORKERS = 256
"""Most worker processes a caller may ask for (each one imports the package and compiles)."""


def check_workers(workers: Any, name: str = "workers") -> int:
    """``workers`` as an int in [1, :data:`MAX_WORKERS`]; ConfigError naming ``name`` otherwise."""
    if not is_integer(workers) or not 1 <= int(workers) <= MAX_WORKERS:
        raise ConfigError(f"{name}={workers!r} is invalid; valid: an integer in [1, {MAX_WORKERS}]")
    return int(workers)


def parallel_map(
    fn: Callable[[Any], Any],
    items: Iterable,
    workers: int = 1,
    progress: bool = False,
    desc: str = "",
    unit: str = "patient",
) -> Iterator:
    """``map(fn, items)`` over ``workers`` processes, in order, with an optional progress bar.

    ``workers`` is checked at the call (not when the first result is asked for), and no more
    processes are started than there are items. ``desc`` and ``unit`` label the bar (e.g.
    ``"episodes"``, ``"episode"``).

    Raises:
        ConfigError: If ``workers`` is not an integer in [1, :data:`MAX_WORKERS`].
    """
    workers = check_workers(workers)
    items = list(items)
    return _map(fn, items, min(workers, max(1, len(items))), progress, desc, unit)


def _map(
    fn: Callable[[Any], Any], items: list, workers: int, progress: bool, desc: str, unit: str
) -> Iterator:
    """The generator behind :func:`parallel_map` (arguments already checked)."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=desc, disable=not progress, unit=unit)
    if workers <= 1:
        for item in items:
            yield fn(item)
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Not fork: a process that has run a parallel numba kernel (the vector env's batch
        # step) holds a thread pool whose locks a forked child inherits mid-state; such a
        # child hung at its first parallel kernel. forkserver (spawn where it is missing)
        # starts workers from a clean process.
        method = (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context(method)
        ) as pool:
            for result in pool.map(fn, items):
                yield result
                bar.update()
    bar.close()
