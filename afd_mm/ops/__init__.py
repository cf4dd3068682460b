"""Compiled helpers for AFD's hot paths on CPU (optional, with fallbacks)."""
from .descriptors import KERNEL_ENV, kernel_available, kernel_descriptors
from .linked_distance import kernel_linked_distance, linked_kernel_serves

__all__ = [
    'KERNEL_ENV', 'kernel_available', 'kernel_descriptors',
    'kernel_linked_distance', 'linked_kernel_serves'
]
