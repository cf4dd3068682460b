"""Compiled helpers for AFD's hot paths on CPU (optional, with fallbacks)."""
from .descriptors import KERNEL_ENV, kernel_available, kernel_descriptors

__all__ = ['KERNEL_ENV', 'kernel_available', 'kernel_descriptors']
