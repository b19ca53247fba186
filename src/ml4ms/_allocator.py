"""Keep freed memory in the process: glibc's defaults make eager torch page-fault.

Eager torch allocates a fresh tensor for every intermediate result. With glibc's default
``malloc`` settings, blocks above a (dynamically raised) threshold come from ``mmap`` and
free memory at the top of the heap is handed back to the kernel as soon as it passes
128 KiB, so each SOAP or potential evaluation touches new pages and pays a page fault per
4 KiB: on the 64-atom Si cell of ``benchmarks/bench_soap.py`` half the time of
``SOAP.create`` went there (9.3 ms against 4.7 ms with the settings below). Keeping up to
``TRIM_THRESHOLD`` bytes of free heap, and serving blocks below ``MMAP_THRESHOLD`` from the
heap, is what jemalloc or tcmalloc (which PyTorch recommends for CPU inference) give.

The settings are process-wide, so they are applied once, when ``ml4ms`` is imported, and
only under glibc; ``ML4MS_TUNE_MALLOC=0`` in the environment leaves ``malloc`` alone (for
example when jemalloc is preloaded). Explicit ``MALLOC_*_`` environment variables win:
glibc reads them at start-up and this module does not override them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: Blocks smaller than this come from the heap (bytes).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Free memory kept at the top of the heap before it is returned to the kernel (bytes).
TRIM_THRESHOLD = 128 * 1024 * 1024

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's malloc.h
_M_MMAP_THRESHOLD = -3

_applied: bool | None = None


def tune_malloc() -> bool:
    """Apply :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD` to glibc's ``malloc``, once.

    Returns
    -------
    bool
        True when the settings are in force (now or from an earlier call); False on other C
        libraries, when ``ML4MS_TUNE_MALLOC=0``, or when the user set glibc's own
        ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("ML4MS_TUNE_MALLOC", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(os.environ.get(name) for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # setting the mmap threshold also stops glibc from raising it (and the trim threshold)
    # on its own, so both are set
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    return _applied
