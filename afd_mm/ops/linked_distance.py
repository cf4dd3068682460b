"""L_AFD's distances and their student gradients by a C kernel, on CPU.

``distance._LinkedDistance`` (the 'l2' and 'cosine' distances between
maps of integer size ratios) computes, for every sample, teacher t and
student s, D[b, t, s] and, in the forward, dL/dv_s. In PyTorch that is a
few batched matrix products per pair of sizes, plus block means, block
sums and a stacked copy of the student maps: about 400 small ops for
ResNet-56 -> ResNet-20, and 2 MiB of temporaries at the step's peak
memory. ``csrc/linked_distance.c`` does it in one call, sample by sample,
with a few maps of scratch.

``kernel_linked_distance`` serves float32 contiguous CPU tensors when
``kernel_available()`` (the same switch, ``AFD_MM_KERNELS``, as the
descriptors) and torch uses at most ``descriptors._MAX_THREADS`` threads
(the kernel runs on the calling thread); otherwise it returns None and
the caller runs the PyTorch path. Values agree with it up to float32
rounding.
"""
import ctypes

import torch

from . import descriptors
from ._library import load_function

__all__ = ['kernel_linked_distance', 'linked_kernel_serves']

_KERNEL = load_function('afd_linked_distance_f32', ctypes.c_int, [
    ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,  # B, T, S
    ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,  # nG, g_hw, t_g
    ctypes.c_void_p, ctypes.c_void_p,  # u, u_stride
    ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p,  # nH, h_hw, s_h
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,  # v, grad, stride
    ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p  # alpha, cosine, dist
])


def linked_kernel_serves(teacher_groups):
    """Whether the kernel would take these teacher values (the students'
    maps are checked when it is called).

    Args:
        teacher_groups (dict): ``distance.grouped_teacher_values``.
    """
    return (_KERNEL is not None and descriptors.kernels_run()
            and all(descriptors.served(u) for _, u in teacher_groups.values()))


def _integer_ratio(student_size, teacher_size):
    """Block means (student larger) or replication (smaller) in both dims:
    the pairs the kernel's resizes serve (``distance._block_ratio`` not
    None; distance imports this module, so the rule is restated here)."""
    (h, w), (th, tw) = student_size, teacher_size
    return ((h >= th and w >= tw and h % th == 0 and w % tw == 0)
            or (h <= th and w <= tw and th % h == 0 and tw % w == 0))


def _int64s(values):
    return (ctypes.c_int64 * max(len(values), 1))(*values)


def _pointers(values):
    return (ctypes.c_void_p * max(len(values), 1))(*values)


def kernel_linked_distance(teacher_groups, student_groups, v_s, alpha,
                           cosine, need_grad):
    """D and dL/dv_s by the C kernel, or None if it does not serve these.

    Args:
        teacher_groups (dict): {(H_t, W_t): (teacher positions, unit
            values (B, n, P))}, ``distance.grouped_teacher_values``.
        student_groups (dict): {(H_s, W_s): student positions}.
        v_s (list[Tensor]): the S student maps v(h_s), (B, H_s, W_s).
        alpha (Tensor): the link weights (B, T, S); dL/dD = alpha / B.
        cosine (bool): 'cosine' instead of 'l2'.
        need_grad (bool): also form dL/dv_s.

    Returns:
        tuple | None: D (B, T, S) and {(H_s, W_s): dL/dv of those students
        stacked (B, n_s, H_s * W_s)} (None without need_grad); None when
        a tensor is not float32 contiguous on CPU, a pair of sizes is not
        an integer ratio in both dims, the kernel is off, or its scratch
        memory could not be allocated.
    """
    students_served = all(descriptors.served(v) for v in v_s) and (
        alpha.dtype == torch.float32 and alpha.device.type == 'cpu')
    ratios = all(_integer_ratio(s, t) for s in student_groups
                 for t in teacher_groups)
    if not (students_served and ratios
            and linked_kernel_serves(teacher_groups)):
        return None
    alpha = alpha.detach().contiguous()
    batch, num_t, num_s = alpha.shape
    t_sizes, t_g = [], [0] * num_t
    u_ptr, u_stride = [0] * num_t, [0] * num_t
    for g, (size, (idx, u)) in enumerate(teacher_groups.items()):
        t_sizes += list(size)
        positions = u.shape[2]
        for j, t in enumerate(idx):
            t_g[t] = g
            u_ptr[t] = u.data_ptr() + j * positions * u.element_size()
            u_stride[t] = u.shape[1] * positions
    s_sizes, s_h = [], [0] * num_s
    grads = {} if need_grad else None
    g_ptr, g_stride = [0] * num_s, [0] * num_s
    for k, (size, idx) in enumerate(student_groups.items()):
        s_sizes += list(size)
        positions = size[0] * size[1]
        if need_grad:
            grads[size] = alpha.new_empty(batch, len(idx), positions)
        for j, s in enumerate(idx):
            s_h[s] = k
            if need_grad:
                g_ptr[s] = (grads[size].data_ptr()
                            + j * positions * grads[size].element_size())
                g_stride[s] = len(idx) * positions
    dist = alpha.new_empty(batch, num_t, num_s)
    failed = _KERNEL(
        batch, num_t, num_s, len(teacher_groups), _int64s(t_sizes),
        _int64s(t_g), _pointers(u_ptr), _int64s(u_stride),
        len(student_groups), _int64s(s_sizes), _int64s(s_h),
        _pointers([v.data_ptr() for v in v_s]),
        _pointers(g_ptr) if need_grad else None, _int64s(g_stride),
        alpha.data_ptr(), int(cosine), dist.data_ptr())
    if failed:
        return None
    return dist, grads
