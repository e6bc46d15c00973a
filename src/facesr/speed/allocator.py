"""Keep freed heap memory in the process during ``facesr restore`` (glibc only).

Why: face detection runs PNet over a photo pyramid in 256-row strips; each strip allocates and frees
blocks of several MB. glibc's malloc hands blocks above its mmap threshold back to the kernel on free
and trims the heap top, so the next strip faults the same memory in again: 55-90 thousand page faults
per 1080p detection. Raising the trim and mmap thresholds keeps those blocks in the heap for reuse;
on the quiet 2-core machine the 1080p photo with 20 faces went from 1.02 s to 0.80 s at ``--upscale 1``
(detection 0.69 -> 0.50 s; docs/restore.md, "Timings"). The cost: memory freed after a photo's peak
stays with the process instead of going back to the system; the peak itself is unchanged
(``benchmarks/memory_probe.py``). Process-wide, so only the CLI's restore command calls it: a program
that imports facesr as a library keeps its own allocator settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: mallopt parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: glibc's largest accepted mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: heap top kept untrimmed up to this size
TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds; True if both were set, False elsewhere (musl, macOS,
    Windows: nothing changes there)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    )


__all__ = ["keep_freed_memory"]
