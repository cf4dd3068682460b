"""Keep freed CPU memory in the process: fewer page faults per train step.

With its default settings glibc's malloc gives the top of its heap back to
the system whenever more than a (self-adjusting) threshold of it is free,
and serves blocks above another threshold by a fresh ``mmap``. A training
step frees its activations in the backward and allocates them again in
the next forward, so every step faults tens of MiB of pages back in, each
page zeroed by the kernel: on CPU about 10-30 ms per ResNet step at batch
64 (``tools/benchmark_speed.py --malloc default``, and ``ru_minflt``).

``keep_freed_memory`` sets both thresholds once, as jemalloc or tcmalloc
(PyTorch's recommendation for CPU training) and a GPU's caching allocator
behave: freed memory is reused by the next step. Resident memory then
stays at the step's peak, which the step needs anyway. ``tools/train.py``
calls it; set ``AFD_MM_MALLOC=default`` to keep glibc's own behaviour.
Environment settings of glibc's thresholds (``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_MMAP_THRESHOLD_``, ``GLIBC_TUNABLES``) are left alone, and on a
C library other than glibc nothing is done.
"""
import ctypes
import ctypes.util
import os

from .env import env_choice

__all__ = ['keep_freed_memory', 'set_thresholds', 'trim_heap', 'MALLOC_ENV']

MALLOC_ENV = 'AFD_MM_MALLOC'

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# the largest mmap threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2)
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 1024 * 1024 * 1024

_GLIBC_ENV = ('MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_',
              'GLIBC_TUNABLES')


def keep_freed_memory(environ=None):
    """Have glibc keep freed memory for reuse instead of returning it.

    Args:
        environ (dict, optional): the environment to read (default
            ``os.environ``).

    Returns:
        bool: whether the thresholds were set (False: opted out with
        ``AFD_MM_MALLOC=default``, glibc tuned by the environment, or not
        glibc).

    Raises:
        ValueError: ``AFD_MM_MALLOC`` is neither ``keep`` nor ``default``.
    """
    environ = os.environ if environ is None else environ
    mode = env_choice(MALLOC_ENV, {
        'keep': 'reuse freed memory, the default',
        'default': "glibc's own behaviour"
    }, 'keep', environ)
    if mode == 'default' or any(key in environ for key in _GLIBC_ENV):
        return False
    return set_thresholds(_MMAP_THRESHOLD, _TRIM_THRESHOLD)


def set_thresholds(mmap_threshold, trim_threshold):
    """glibc's ``mallopt`` of M_MMAP_THRESHOLD and M_TRIM_THRESHOLD.

    Setting either also stops glibc from adjusting them itself.

    Args:
        mmap_threshold (int): bytes from which a block gets its own mmap.
        trim_threshold (int): free bytes at the heap's top above which
            they go back to the system.

    Returns:
        bool: whether both were set (False on another C library).
    """
    libc = _glibc()
    return libc is not None and bool(
        libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
        and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


def trim_heap():
    """glibc's ``malloc_trim(0)``: free heap memory goes back to the
    system now. Returns whether any did (False on another C library)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


_LIBC = []  # [the process's glibc or None], looked up once


def _glibc():
    """The process's glibc, or None for another C library."""
    if not _LIBC:
        _LIBC.append(_find_glibc())
    return _LIBC[0]


def _find_glibc():
    name = ctypes.util.find_library('c')
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # glibc only
        libc.mallopt
        libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return libc
