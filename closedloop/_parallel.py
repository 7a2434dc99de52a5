"""Local parallelism: an ordered process-pool map with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


def parallel_map(fn: Callable[[Any], Any], items: Iterable, workers: int = 1,
                 progress: bool = False, desc: str = "", unit: str = "patient") -> Iterator:
    """``map(fn, items)`` over ``workers`` processes, in order, with an optional progress bar.

    ``desc`` and ``unit`` label the bar (e.g. ``"episodes"``, ``"episode"``).
    """
    from tqdm.auto import tqdm

    items = list(items)
    bar = tqdm(total=len(items), desc=desc, disable=not progress, unit=unit)
    if workers <= 1:
        for item in items:
            yield fn(item)
            bar.update()
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(fn, items):
                yield result
                bar.update()
    bar.close()
