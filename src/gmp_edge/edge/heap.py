"""Hand large freed blocks back to the operating system (glibc), for a steady RSS.

glibc serves a large allocation (a numpy array of a segment fold, a commit's columns) with
its own mmap and, when it is freed, raises its mmap threshold to that size, so the next
ones of that size come from the heap and stay there after they are freed: at 20,000 tags
the service's resident memory stepped up ~15-35 MB at each minute's fold (ADR 0029).
Fixing the threshold turns that adaptation off: blocks of 1 MB or more are always mapped
and always returned. Small objects (the interpreter's own arenas) are not affected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: glibc's mallopt parameter numbers (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Allocations at least this large are mapped on their own and unmapped when freed.
MMAP_THRESHOLD = 1 << 20


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold (and trim threshold) at :data:`MMAP_THRESHOLD`; False
    where the C library is not glibc (nothing changed: only the memory figure differs)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        log.debug("no mallopt in the C library (%s): heap thresholds left as they are", name)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD) == 1 and ok
    return ok
