"""The compiled library afd_mm.ops._kernels, opened with ctypes.

``pip install`` builds it from ``csrc/`` (setup.py, an optional extension);
without it every kernel here returns None and its caller uses PyTorch.
ctypes releases the GIL for each call.
"""
import ctypes

_LIBRARY = None


def _open():
    global _LIBRARY
    if _LIBRARY is None:
        try:
            from . import _kernels
        except ImportError:
            _LIBRARY = False
        else:
            _LIBRARY = ctypes.CDLL(_kernels.__file__)
    return _LIBRARY or None


def load_function(name, restype, argtypes):
    """The C function ``name`` of the library, or None when not built."""
    library = _open()
    if library is None:
        return None
    fn = getattr(library, name)
    fn.restype = restype
    fn.argtypes = argtypes
    return fn
