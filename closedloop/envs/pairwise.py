"""NumPy's pairwise summation, bit for bit, for compiled code without allocation.

The control step reports means over its pulses (:mod:`closedloop.envs.step`) as its NumPy
reference computes them with ``np.mean``; :func:`pairwise_sum` adds in ``np.add.reduce``'s
order: blocks of up to :data:`PAIRWISE_BLOCK` values with 8 accumulators, longer runs split in
two (the first part a multiple of 8 long) and the halves' sums added. NumPy recurses; numba
caches no recursion, so the splits are unrolled seven levels deep (``_sum1`` to ``_sum7``:
up to 16,384 values).
"""

from __future__ import annotations

from numba import njit

PAIRWISE_BLOCK = 128
"""NumPy's block: ``np.add.reduce`` sums up to this many values with 8 accumulators, and splits
longer runs in two (the first part a multiple of 8 long) and adds the halves' sums."""


@njit(cache=True, inline="always")
def _term(x, i, centre, absolute):
    """Value ``i`` of the sum: ``x[i]``, or ``|x[i] - centre|``."""
    return abs(x[i] - centre) if absolute else x[i]


@njit(cache=True, inline="always")
def pairwise_sum(x, n, centre=0.0, absolute=False):
    """NumPy's summation of ``x[:n]`` (or of ``|x - centre|``), bit for bit.

    The step reports means over its pulses as the NumPy reference computes them
    (``np.add.reduce``: pairwise, see :data:`PAIRWISE_BLOCK`).
    """
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, 0, n, centre, absolute)
    return _sum7(x, 0, n, centre, absolute)  # up to 16,384 values (pulses_per_step <= 10,000)


@njit(cache=True)
def _sum1(x, lo, n, centre, absolute):
    """NumPy's sum of ``x[lo:lo + n]`` for ``n`` up to 256: one split into two blocks."""
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, lo, n, centre, absolute)
    h = n // 2 - (n // 2) % 8
    return _block_sum(x, lo, h, centre, absolute) + _block_sum(x, lo + h, n - h, centre, absolute)


@njit(cache=True)
def _sum2(x, lo, n, centre, absolute):
    """:func:`_sum1` one split deeper (NumPy's recursion, unrolled: numba caches no recursion)."""
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, lo, n, centre, absolute)
    h = n // 2 - (n // 2) % 8
    return _sum1(x, lo, h, centre, absolute) + _sum1(x, lo + h, n - h, centre, absolute)


@njit(cache=True)
def _sum3(x, lo, n, centre, absolute):
    """:func:`_sum2` one split deeper (NumPy's recursion, unrolled: numba caches no recursion)."""
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, lo, n, centre, absolute)
    h = n // 2 - (n // 2) % 8
    return _sum2(x, lo, h, centre, absolute) + _sum2(x, lo + h, n - h, centre, absolute)


@njit(cache=True)
def _sum4(x, lo, n, centre, absolute):
    """:func:`_sum3` one split deeper (NumPy's recursion, unrolled: numba caches no recursion)."""
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, lo, n, centre, absolute)
    h = n // 2 - (n // 2) % 8
    return _sum3(x, lo, h, centre, absolute) + _sum3(x, lo + h, n - h, centre, absolute)


@njit(cache=True)
def _sum5(x, lo, n, centre, absolute):
    """:func:`_sum4` one split deeper (NumPy's recursion, unrolled: numba caches no recursion)."""
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, lo, n, centre, absolute)
    h = n // 2 - (n // 2) % 8
    return _sum4(x, lo, h, centre, absolute) + _sum4(x, lo + h, n - h, centre, absolute)


@njit(cache=True)
def _sum6(x, lo, n, centre, absolute):
    """:func:`_sum5` one split deeper (NumPy's recursion, unrolled: numba caches no recursion)."""
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, lo, n, centre, absolute)
    h = n // 2 - (n // 2) % 8
    return _sum5(x, lo, h, centre, absolute) + _sum5(x, lo + h, n - h, centre, absolute)


@njit(cache=True)
def _sum7(x, lo, n, centre, absolute):
    """:func:`_sum6` one split deeper (NumPy's recursion, unrolled: numba caches no recursion)."""
    if n <= PAIRWISE_BLOCK:
        return _block_sum(x, lo, n, centre, absolute)
    h = n // 2 - (n // 2) % 8
    return _sum6(x, lo, h, centre, absolute) + _sum6(x, lo + h, n - h, centre, absolute)


@njit(cache=True, inline="always")
def _block_sum(x, lo, n, centre, absolute):
    """NumPy's sum of one block ``x[lo:lo + n]``, ``n`` at most :data:`PAIRWISE_BLOCK`."""
    if n < 8:
        s = 0.0
        for i in range(lo, lo + n):
            s += _term(x, i, centre, absolute)
        return s
    r0, r1 = _term(x, lo, centre, absolute), _term(x, lo + 1, centre, absolute)
    r2, r3 = _term(x, lo + 2, centre, absolute), _term(x, lo + 3, centre, absolute)
    r4, r5 = _term(x, lo + 4, centre, absolute), _term(x, lo + 5, centre, absolute)
    r6, r7 = _term(x, lo + 6, centre, absolute), _term(x, lo + 7, centre, absolute)
    i, end = lo + 8, lo + n - n % 8
    while i < end:
        r0, r1 = r0 + _term(x, i, centre, absolute), r1 + _term(x, i + 1, centre, absolute)
        r2, r3 = r2 + _term(x, i + 2, centre, absolute), r3 + _term(x, i + 3, centre, absolute)
        r4, r5 = r4 + _term(x, i + 4, centre, absolute), r5 + _term(x, i + 5, centre, absolute)
        r6, r7 = r6 + _term(x, i + 6, centre, absolute), r7 + _term(x, i + 7, centre, absolute)
        i += 8
    s = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for j in range(i, lo + n):
        s += _term(x, j, centre, absolute)
    return s
