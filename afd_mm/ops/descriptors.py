"""g(h) and v(h) of a CPU feature map in one pass, by a small C kernel.

AFD reduces every candidate map to g(h) (mean over H, W) and v(h) (mean
over C of h^2, or of |h|) as it is produced: 27 teacher and 9 student maps,
84 MiB at batch 64 for ResNet-56 -> ResNet-20. PyTorch reads a map twice
for the two reductions; ``csrc/descriptors.c`` reads it once. The teacher
forward's added time went from 11.8 to 4.2 ms on one core
(``tools/benchmark_speed.py`` measures the whole step).

The kernel is built by ``pip install`` into ``afd_mm.ops._kernels``
(setup.py, an optional extension: without a C compiler the install still
succeeds) and serves float32, contiguous CPU maps; ``kernel_descriptors``
returns None for anything else, or when the extension is absent or
switched off with ``AFD_MM_KERNELS=0``, and the caller uses PyTorch
(``distance._chunked_descriptors``). Values agree with PyTorch's up to
float32 rounding.

The kernel runs on the calling thread, so it serves a process with at
most two torch threads (``_MAX_THREADS``): there it beats PyTorch's
reductions (R56's 27 teacher maps at 2 threads: 88.6 ms for the hooked
teacher forward against 92.2), and splitting a map over a thread pool was
slower still (91.4: torch's OpenMP threads spin beside the pool). With
more threads PyTorch's parallel reductions do the work.
"""
import ctypes

import torch

from afd_mm.utils.env import env_choice

from ._library import load_function

__all__ = ['KERNEL_ENV', 'kernel_available', 'kernel_descriptors']

KERNEL_ENV = 'AFD_MM_KERNELS'

# above this many torch threads PyTorch's parallel reductions are faster
_MAX_THREADS = 2


def _load():
    """The C function, or None when the extension was not built."""
    return load_function('afd_map_descriptors_f32', None, [
        ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p
    ])  # x, B, C, P, absolute, g, v


_KERNEL = _load()


def kernel_available(environ=None):
    """Whether ``kernel_descriptors`` runs the C kernel.

    Args:
        environ (dict, optional): the environment to read (default
            ``os.environ``).

    Returns:
        bool: the extension is built and ``AFD_MM_KERNELS`` is not ``0``.

    Raises:
        ValueError: ``AFD_MM_KERNELS`` is neither ``0`` nor ``1``.
    """
    mode = env_choice(KERNEL_ENV, {
        '1': "use afd_mm's C kernels where they apply, the default",
        '0': 'PyTorch only'
    }, '1', environ)
    return mode == '1' and _KERNEL is not None


def served(tensor):
    """A tensor the C kernels read: float32, contiguous, on CPU."""
    return (tensor.device.type == 'cpu' and tensor.dtype == torch.float32
            and tensor.is_contiguous())


def kernels_run():
    """The C kernels run in this process: at most ``_MAX_THREADS`` torch
    threads (they run on the calling thread) and ``kernel_available()``."""
    return (torch.get_num_threads() <= _MAX_THREADS
            and kernel_available())


def kernel_descriptors(h, absolute=False):
    """g(h) and v(h) of one map by the C kernel, or None if it cannot.

    Args:
        h (Tensor): a feature map (B, C, H, W).
        absolute (bool): v from |h| ('a1') instead of h^2 ('a2').

    Returns:
        tuple[Tensor, Tensor] | None: g (B, C) and v (B, H, W), without
        autograd; None unless h is a non-empty, contiguous float32 CPU map,
        torch uses at most ``_MAX_THREADS`` threads and
        ``kernel_available()``.
    """
    if h.dim() != 4 or h.numel() == 0 or not served(h) or not kernels_run():
        return None
    batch, channels, height, width = h.shape
    g = h.new_empty(batch, channels)
    v = h.new_empty(batch, height, width)
    _KERNEL(h.data_ptr(), batch, channels, height * width, int(absolute),
            g.data_ptr(), v.data_ptr())
    return g, v
