"""Counter-based random numbers for the kernels (murmur3 ``fmix32`` finaliser).

A draw is a pure function of (seed, pulse index, fibre or sample index), so the kernels need no
mutable generator: the same seed gives the same trajectory bit for bit, whatever the batch layout,
and the NumPy reference reproduces every draw exactly. numba widens integer arithmetic to 64 bits,
so the kernels' versions cast each step back to ``uint32``: the compiler then keeps the hash in
32-bit lanes (8 to a vector register instead of 4), and the per-fibre jitter draw costs about
0.6 of the masked 64-bit form (the same values, bit for bit); the NumPy versions keep ``uint64``
masked to 32 bits.

Normal deviates use the Irwin-Hall sum of four 8-bit uniforms from one 32-bit hash, scaled to
unit variance: bounded at ±3.46 sd, kurtosis -0.3, and branch-free (an assumption stated in the
model card).
"""

from __future__ import annotations

import numpy as np
from numba import njit

M32 = np.uint64(0xFFFFFFFF)
C1 = np.uint64(0x85EBCA6B)
C2 = np.uint64(0xC2B2AE35)
GOLDEN = np.uint64(0x9E3779B9)
S16 = np.uint64(16)
S13 = np.uint64(13)
BYTE = np.uint64(255)
S8 = np.uint64(8)
S24 = np.uint64(24)
# Irwin-Hall(4) of (b + 0.5)/256: mean 2, variance 4 * (256² - 1) / (12 * 256²).
IH_SCALE = 1.0 / (256.0 * np.sqrt(4.0 * (256.0**2 - 1.0) / (12.0 * 256.0**2)))
Z_MAX = 510.0 * IH_SCALE
"""Largest |deviate| :func:`hash_normal` can return (about 3.46)."""


U16 = np.uint32(16)
U13 = np.uint32(13)
U8 = np.uint32(8)
C1_32 = np.uint32(C1)
C2_32 = np.uint32(C2)
BYTE_PAIRS = np.uint32(0x00FF00FF)
LOW16 = np.uint32(0xFFFF)


@njit(cache=True, inline="always")
def fmix32(h):
    """Murmur3 32-bit finaliser of the low 32 bits of ``h`` (an unsigned integer); a ``uint32``."""
    h = np.uint32(h)
    h = np.uint32(h ^ (h >> U16))
    h = np.uint32(h * C1_32)
    h = np.uint32(h ^ (h >> U13))
    h = np.uint32(h * C2_32)
    return np.uint32(h ^ (h >> U16))


@njit(cache=True, inline="always")
def hash_normal(h):
    """Approximately standard-normal deviate from a 32-bit hash ``h`` (``uint32``).

    The sum of its four bytes, taken two pairs at a time (the same integer as byte by byte).
    """
    s = np.uint32((h & BYTE_PAIRS) + ((h >> U8) & BYTE_PAIRS))
    s = np.uint32((s & LOW16) + (s >> U16))
    return (np.float64(np.int32(s)) + 2.0 - 512.0) * IH_SCALE  # via int32: a fast, exact cast


@njit(cache=True)
def pulse_key(seed_a, seed_b, pulse_index):
    """32-bit key of one pulse, from the two seed words and the 64-bit pulse counter."""
    p = np.uint64(pulse_index)
    lo = p & M32
    hi = p >> np.uint64(32)
    return fmix32(((lo * GOLDEN) & M32) ^ fmix32(hi ^ seed_a) ^ seed_b)


def seed_words(seed: int | np.random.SeedSequence) -> np.ndarray:
    """Four 32-bit words (as uint64) derived from a seed via ``SeedSequence``.

    Words 0-1 key the pulses, word 2 the fibres, word 3 the recording samples.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return ss.generate_state(4, dtype=np.uint32).astype(np.uint64)


# --- NumPy versions for the reference (identical integer arithmetic) -------------------------


def fmix32_np(h: np.ndarray) -> np.ndarray:
    """Vectorised :func:`fmix32` on uint64 arrays."""
    h = np.asarray(h, dtype=np.uint64) & M32
    h = h ^ (h >> S16)
    h = (h * C1) & M32
    h = h ^ (h >> S13)
    h = (h * C2) & M32
    return h ^ (h >> S16)


def hash_normal_np(h: np.ndarray) -> np.ndarray:
    """Vectorised :func:`hash_normal`."""
    h = np.asarray(h, dtype=np.uint64)
    s = (h & BYTE) + ((h >> S8) & BYTE) + ((h >> S16) & BYTE) + ((h >> S24) & BYTE)
    return (s.astype(np.float64) + 2.0 - 512.0) * IH_SCALE


def pulse_key_np(seed_a: np.uint64, seed_b: np.uint64, pulse_index: int) -> np.uint64:
    """Pure-NumPy :func:`pulse_key`."""
    p = np.uint64(pulse_index)
    lo, hi = p & M32, p >> np.uint64(32)
    return fmix32_np(((lo * GOLDEN) & M32) ^ fmix32_np(hi ^ seed_a) ^ seed_b)[()]
