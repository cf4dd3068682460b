"""AFD's descriptors and distances, as pure functions (spec sections 2, 3).

Symbols: B batch, T teacher candidates, S student candidates, C channels,
H x W a map's spatial size, P = H_t * W_t positions of a teacher map.

* ``global_descriptor``  g(h): mean over H and W, feeds queries and keys.
* ``spatial_descriptor`` v(h): a channel pooling of |h|, the value maps.
* ``teacher_values`` u_t and ``student_values`` w_{s,t}: value maps at the
  teacher's size, flattened and L2-normalised.
* ``map_descriptors`` g(h) and v(h) together, with a fused backward.
* ``value_distance`` D between every student value and one teacher value.
* ``distance_matrix`` D[b, t, s] for all pairs (``value_distance_matrix``
  from the descriptors, ``grouped_distance_matrix`` from teacher values
  already stacked per size by ``grouped_teacher_values``), with the
  student values computed once per distinct teacher spatial size.
* ``linked_distance`` L_AFD = sum_t mean_b sum_s alpha D itself, what
  ``AFDLoss`` calls: for 'l2' and 'cosine' between sizes of integer ratio
  it never resizes a student map to a teacher's size (each inner product
  is taken at the smaller size, ``teacher_block_sums``), and its backward
  keeps one map per student instead of the teacher values. On CPU in
  float32 one C call does all of it (``afd_mm.ops.kernel_linked_distance``,
  the same values up to rounding).

Speed and memory (``tools/benchmark_speed.py``): candidates of one size are
handled by one batched op, never a Python loop over pairs; integer resizes
are block means or replication; g and v of a map, and the L2
normalisation, have hand-written one- or two-op backwards. Every function
gives the values (and gradients) of the formula it names.
"""
import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from afd_mm.ops import kernel_descriptors, kernel_linked_distance

__all__ = [
    'POOLINGS', 'DISTANCES', 'global_descriptor', 'spatial_descriptor',
    'map_descriptors', 'teacher_values', 'student_values', 'value_distance',
    'distance_matrix', 'value_distance_matrix', 'grouped_teacher_values',
    'grouped_distance_matrix', 'linked_distance', 'teacher_block_sums'
]

POOLINGS = ('a2', 'a1', 'max')
DISTANCES = ('l2', 'l1', 'kl', 'cosine')

# Smallest total mass of a value map read as a distribution ('kl'), and the
# smallest probability inside its log: keeps an all-zero map finite.
_KL_EPS = 1e-12


def global_descriptor(h):
    """g(h): the mean of a feature map over its spatial positions.

    Args:
        h (Tensor): a feature map (B, C, H, W), or a vector (B, C) which is
            returned unchanged.

    Returns:
        Tensor: (B, C).
    """
    if h.dim() == 2:
        return h
    if h.dim() != 4:
        raise ValueError(
            f'global_descriptor takes a (B, C, H, W) map or a (B, C) '
            f'vector, got a tensor of shape {tuple(h.shape)}.')
    return h.mean(dim=(2, 3))  # (B, C)


def spatial_descriptor(h, pooling='a2'):
    """v(h): pool a feature map over its channels.

    Args:
        h (Tensor): a feature map (B, C, H, W).
        pooling (str): 'a2' (default, spec section 2) mean over C of h ** 2;
            'a1' mean over C of |h|; 'max' max over C of |h|.

    Returns:
        Tensor: (B, H, W), non-negative.
    """
    if pooling == 'a2':
        return h.pow(2).mean(dim=1)  # (B, H, W)
    if pooling == 'a1':
        return h.abs().mean(dim=1)  # (B, H, W)
    if pooling == 'max':
        return h.abs().amax(dim=1)  # (B, H, W)
    raise ValueError(
        f'pooling={pooling!r} is not supported; choose one of {POOLINGS} '
        f'(the `pooling` key of AFDLoss).')


def map_descriptors(h, pooling='a2'):
    """g(h) and v(h) of one feature map, for AFD's loss.

    The same values as ``global_descriptor`` and ``spatial_descriptor``,
    in one pass over the map (``_chunked_descriptors``); for 'a2' and 'a1'
    on a map that needs a gradient, one autograd node whose backward is a
    single op on the map, dg/dh = 1 / (H W) and dv/dh = 2 h / C (or
    sign(h) / C) added together, instead of four ops and an accumulation.

    Args:
        h (Tensor): a feature map (B, C, H, W).
        pooling (str): see ``spatial_descriptor``; default 'a2'.

    Returns:
        tuple[Tensor, Tensor]: g (B, C) and v (B, H, W).
    """
    if pooling not in ('a2', 'a1') or h.dim() != 4:
        return global_descriptor(h), spatial_descriptor(h, pooling)
    if torch.is_grad_enabled() and h.requires_grad:
        return _Descriptors.apply(h, pooling)
    return _chunked_descriptors(h, pooling)  # e.g. the teacher's maps


# elements of the (k, C, H, W) temporary of ``_chunked_descriptors`` on
# CPU: 512 KiB in float32, so it stays in the core's cache between its two
# ops
_CHUNK_ELEMENTS = 1 << 17


def _chunked_descriptors(h, pooling):
    """g(h) and v(h) for 'a2' / 'a1', on CPU a few samples at a time.

    A float32 contiguous CPU map goes to afd_mm's C kernel, which reads it
    once for both (``afd_mm.ops.kernel_descriptors``). Otherwise g is one
    reduction over the whole map. ``h.pow(2).mean(dim=1)`` would write and
    read back a temporary of the map's size; on CPU, h ** 2 (or |h|) of k
    samples goes into one small buffer that is reduced while still in
    cache. On an accelerator, one chunk (three kernels, not two per
    chunk). Same values up to float rounding, no autograd.
    """
    fused = kernel_descriptors(h, absolute=pooling == 'a1')  # no autograd
    if fused is not None:
        return fused  # (B, C), (B, H, W)
    batch, channels = h.shape[:2]
    k = batch
    if h.device.type == 'cpu':
        k = max(1, _CHUNK_ELEMENTS // max(h[0].numel(), 1))
    with torch.no_grad():
        g = h.mean(dim=(2, 3))  # (B, C)
        v = h.new_empty(batch, *h.shape[2:])
        buffer = h.new_empty(min(k, batch), *h.shape[1:])
        for start in range(0, batch, k):
            x = h[start:start + k]
            n = x.shape[0]
            if pooling == 'a2':
                mapped = torch.mul(x, x, out=buffer[:n])
            else:
                mapped = torch.abs(x, out=buffer[:n])
            torch.sum(mapped, dim=1, out=v[start:start + n])
    return g, v.div_(channels)  # (B, C), (B, H, W)


class _Descriptors(torch.autograd.Function):
    """(g(h), v(h)) with the fused backward of ``map_descriptors``."""

    @staticmethod
    def forward(ctx, h, pooling):
        ctx.pooling = pooling
        ctx.save_for_backward(h)
        return _chunked_descriptors(h, pooling)  # (B, C), (B, H, W)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_g, grad_v):
        h, = ctx.saved_tensors
        channels, positions = h.shape[1], h.shape[2] * h.shape[3]
        per_channel = (grad_g / positions)[:, :, None, None]  # (B, C, 1, 1)
        if ctx.pooling == 'a2':
            per_position = (grad_v * (2 / channels)).unsqueeze(1)
            return torch.addcmul(per_channel, h, per_position), None
        per_position = (grad_v / channels).unsqueeze(1)  # (B, 1, H, W)
        return torch.addcmul(per_channel, h.sgn(), per_position), None


def teacher_values(v_t):
    """u_t: a teacher's value map flattened and L2-normalised.

    Args:
        v_t (Tensor): the teacher's spatial descriptor (B, H_t, W_t).

    Returns:
        Tensor: (B, P) with P = H_t * W_t, unit L2 norm per sample.
    """
    return _UnitRows.apply(v_t.flatten(1))  # (B, P)


class _UnitRows(torch.autograd.Function):
    """``F.normalize(x, dim=-1)``: x / max(|x|, 1e-12), same values.

    Its backward, (g - y <y, g>) / |x| (g / 1e-12 where the norm is
    clamped), is two ops on x's size instead of autograd's seven. With
    ``inplace=True`` x itself is divided (for a tensor built only to be
    normalised), so no second tensor of its size is made.
    """

    @staticmethod
    def forward(ctx, x, inplace=False):
        if inplace:
            ctx.mark_dirty(x)
        else:
            x = x.clone()
        y, denom, unclamped = _normalise_rows_(x)
        ctx.save_for_backward(y, denom, unclamped)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad, *_):
        return _normalise_rows_backward(grad, *ctx.saved_tensors), None


def _normalise_rows_(x):
    """x / max(|x|, 1e-12) over the last dim, in place.

    Returns:
        tuple: x, the divisors (..., 1) and where the norm was not clamped,
        what ``_normalise_rows_backward`` reads.
    """
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    denom = norm.clamp_min(1e-12)
    return x.div_(denom), denom, norm >= 1e-12


def _normalise_rows_backward(grad, y, denom, unclamped):
    """The gradient wrt x of y = ``_normalise_rows_(x)``."""
    dot = (y * grad).sum(dim=-1, keepdim=True) * unclamped
    return torch.addcmul(grad, y, dot, value=-1).div_(denom)


def student_values(v_s, size):
    """w_{s,t}: every student's value map at one teacher's spatial size.

    Each map is adaptive-average-pooled to ``size`` (a smaller student map
    is up-sampled by replication), flattened and L2-normalised. Call it once
    per distinct teacher size: the result does not depend on anything else
    about the teacher. One autograd node (``_StudentValues``): each map is
    resized straight into its row of the result, which is normalised in
    place, so one (B, S, P) tensor is made, and kept for the backward.

    Args:
        v_s (list[Tensor]): the S students' spatial descriptors, each
            (B, H_s, W_s); sizes may differ.
        size (tuple[int, int]): the teacher's (H_t, W_t).

    Returns:
        Tensor: (B, S, P) with P = H_t * W_t, unit L2 norm over P.
    """
    return _StudentValues.apply(tuple(size), *v_s)  # (B, S, P)


class _StudentValues(torch.autograd.Function):
    """``student_values`` with a hand-written backward.

    Forward: every map pooled into its row of one (B, S, P) tensor, then
    normalised in place (``_normalise_rows_``). Backward: the
    normalisation's, then each map's pooling backward: a block mean spreads
    its gradient evenly over the block, a replication sums it over the
    copies, other sizes use ``adaptive_avg_pool2d``'s own backward.
    """

    @staticmethod
    def forward(ctx, size, *v_s):
        batch, (out_h, out_w) = v_s[0].shape[0], size
        dtype = v_s[0].dtype
        for v in v_s[1:]:
            dtype = torch.promote_types(dtype, v.dtype)
        w = v_s[0].new_empty(batch, len(v_s), out_h * out_w, dtype=dtype)
        for i, v in enumerate(v_s):
            _resize_into(w[:, i].view(batch, out_h, out_w), v)
        normalised = _normalise_rows_(w)  # w (B, S, P), divisors, mask
        ctx.size = size
        ctx.inputs = [(v.shape, v.dtype) for v in v_s]
        # only adaptive pooling's backward reads its input (for its size)
        kept = [v for v in v_s
                if _block_ratio(tuple(v.shape[-2:]), size) is None]
        ctx.save_for_backward(*normalised, *kept)
        return w

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        w, denom, unclamped, *kept = ctx.saved_tensors
        grad = _normalise_rows_backward(grad, w, denom, unclamped)
        batch, (out_h, out_w) = grad.shape[0], ctx.size
        grads, kept = [None], iter(kept)
        for i, (shape, dtype) in enumerate(ctx.inputs):
            if not ctx.needs_input_grad[i + 1]:
                grads.append(None)
                continue
            g = grad[:, i].reshape(batch, out_h, out_w)
            v = (None if _block_ratio(tuple(shape[-2:]), ctx.size)
                 else next(kept))
            grads.append(_resize_backward(g, shape, v).to(dtype))
        return tuple(grads)


def _resize_into(out, v):
    """``out`` (B, H_t, W_t) = PyTorch's adaptive average pooling of v.

    When the size ratio is an integer the bins are exact blocks
    (down-sampling: average pooling) or single pixels (up-sampling:
    replication, written straight into ``out``), which is what
    ``adaptive_avg_pool2d`` computes, faster.

    Args:
        out (Tensor): (B, H_t, W_t), written in place.
        v (Tensor): (B, H, W).
    """
    (h, w), (out_h, out_w) = v.shape[-2:], out.shape[-2:]
    b = v.shape[0]
    if (h, w) == (out_h, out_w):
        out.copy_(v)
    elif h % out_h == 0 and w % out_w == 0:
        blocks = (h // out_h, w // out_w)
        out.copy_(F.avg_pool2d(v.unsqueeze(1), blocks).squeeze(1))
    elif out_h % h == 0 and out_w % w == 0:
        shape = (b, h, out_h // h, w, out_w // w)
        out.view(shape).copy_(v[:, :, None, :, None].expand(shape))
    else:
        out.copy_(F.adaptive_avg_pool2d(v.unsqueeze(1), (out_h, out_w))
                  .squeeze(1))


def _resize_backward(grad, shape, v=None):
    """The gradient wrt v (B, H, W) of ``_resize_into``'s output ``grad``.

    ``v`` itself is read only for a size ratio that is not an integer.
    """
    (b, h, w), (out_h, out_w) = shape, grad.shape[-2:]
    if (h, w) == (out_h, out_w):
        return grad
    if h % out_h == 0 and w % out_w == 0:
        rh, rw = h // out_h, w // out_w
        spread = grad[:, :, None, :, None] / (rh * rw)
        return spread.expand(b, out_h, rh, out_w, rw).reshape(b, h, w)
    if out_h % h == 0 and out_w % w == 0:  # the sum over each block
        rh, rw = out_h // h, out_w // w
        mean = F.avg_pool2d(grad.unsqueeze(1), (rh, rw)).squeeze(1)
        return mean.mul_(rh * rw)  # (B, H, W)
    return torch.ops.aten._adaptive_avg_pool2d_backward(
        grad.unsqueeze(1), v.unsqueeze(1)).squeeze(1)


def _group_by_size(maps):
    """{(H, W): positions of the maps of that size}, in first-seen order."""
    groups = {}
    for i, v in enumerate(maps):
        groups.setdefault(tuple(v.shape[-2:]), []).append(i)
    return groups


def _in_order(stacked, order):
    """Put dim 1 of ``stacked``, holding items ``order``, back in 0, 1, ..."""
    if order == sorted(order):
        return stacked
    inverse = torch.argsort(torch.tensor(order, device=stacked.device))
    return stacked.index_select(1, inverse)


def _kl_divergence(w, u):
    """KL(p_u || p_w) over positions for non-negative maps w, u.

    The value maps are non-negative (every pooling uses |h| or h ** 2 and
    average pooling keeps the sign), so dividing a map by its sum makes it a
    distribution over the P positions. This is the same as L1-normalising
    v(h) itself: the L2 normalisation before it only rescales. The
    teacher's distribution is the target, as in Hinton's KD.

    Args:
        w (Tensor): student values (B, S, P).
        u (Tensor): teacher values broadcast to (B, 1, P).

    Returns:
        Tensor: (B, S), summed (not averaged) over the P positions so it
        is a true KL divergence.
    """
    p_w = w / w.sum(dim=-1, keepdim=True).clamp_min(_KL_EPS)  # (B, S, P)
    p_u = u / u.sum(dim=-1, keepdim=True).clamp_min(_KL_EPS)  # (B, 1, P)
    log_p_w = p_w.clamp_min(_KL_EPS).log()
    return (torch.xlogy(p_u, p_u) - p_u * log_p_w).sum(dim=-1)  # (B, S)


def value_distance(w, u, distance='l2'):
    """D between every student value and one teacher value.

    Args:
        w (Tensor): student values at the teacher's size (B, S, P).
        u (Tensor): the teacher's values (B, P).
        distance (str): 'l2' (default, spec section 3) mean over P of
            (w - u) ** 2; 'l1' mean over P of |w - u|; 'kl' KL(p_u || p_w)
            where p is a map divided by its sum (see ``_kl_divergence``);
            'cosine' 1 - cos(w, u), which is 1 - <w, u> because both have
            unit norm (an all-zero map has norm 0 and cosine 0).

    Returns:
        Tensor: (B, S).
    """
    u = u.unsqueeze(1)  # (B, 1, P)
    if distance == 'l2':
        return (w - u).pow(2).mean(dim=-1)  # (B, S)
    if distance == 'l1':
        return (w - u).abs().mean(dim=-1)  # (B, S)
    if distance == 'kl':
        return _kl_divergence(w, u)  # (B, S)
    if distance == 'cosine':
        return 1 - (w * u).sum(dim=-1)  # (B, S)
    raise ValueError(
        f'distance={distance!r} is not supported; choose one of '
        f'{DISTANCES} (the `distance` key of AFDLoss).')


def distance_matrix(teacher_feats, student_feats, distance='l2',
                    pooling='a2'):
    """D[b, t, s] for every teacher and student candidate.

    Student values are computed once per distinct teacher spatial size (see
    ``value_distance_matrix``).

    Args:
        teacher_feats (list[Tensor]): T maps, each (B, C_t, H_t, W_t).
        student_feats (list[Tensor]): S maps, each (B, C_s, H_s, W_s).
        distance (str): see ``value_distance``; default 'l2'.
        pooling (str): see ``spatial_descriptor``; default 'a2'.

    Returns:
        Tensor: (B, T, S).
    """
    return value_distance_matrix(
        [spatial_descriptor(h, pooling) for h in teacher_feats],
        [spatial_descriptor(h, pooling) for h in student_feats], distance)


def value_distance_matrix(v_t, v_s, distance='l2'):
    """D[b, t, s] from the spatial descriptors of the candidates.

    Student values are computed once per distinct teacher spatial size and
    shared by all teachers of that size; the distances of all teachers of
    one size are one batched op.

    Args:
        v_t (list[Tensor]): T teacher descriptors v(h_t), (B, H_t, W_t).
        v_s (list[Tensor]): S student descriptors v(h_s), (B, H_s, W_s).
        distance (str): see ``value_distance``; default 'l2'.

    Returns:
        Tensor: (B, T, S).
    """
    return grouped_distance_matrix(grouped_teacher_values(v_t), v_s,
                                   distance)


def grouped_teacher_values(v_t):
    """u_t of every teacher, stacked per spatial size.

    Args:
        v_t (list[Tensor]): T teacher descriptors v(h_t), (B, H_t, W_t).

    Returns:
        dict: {(H_t, W_t): (positions of those teachers among the T,
        their ``teacher_values`` stacked (B, n, P))}, sizes in first-seen
        order.
    """
    groups = {}
    for size, idx in _group_by_size(v_t).items():
        u = torch.stack([v_t[t].flatten(1) for t in idx], dim=1)
        groups[size] = (idx, _UnitRows.apply(u, True))  # (B, n, P)
    return groups


def grouped_distance_matrix(teacher_groups, v_s, distance='l2'):
    """D[b, t, s] from ``grouped_teacher_values`` and student descriptors.

    Args:
        teacher_groups (dict): see ``grouped_teacher_values``.
        v_s (list[Tensor]): S student descriptors v(h_s), (B, H_s, W_s).
        distance (str): see ``value_distance``; default 'l2'.

    Returns:
        Tensor: (B, T, S).
    """
    columns, order = [], []
    for size, (idx, u) in teacher_groups.items():
        w = student_values(v_s, size)  # (B, S, P)
        columns.append(_group_distance(w, u, distance))  # (B, n, S)
        order += idx
    return _in_order(torch.cat(columns, dim=1), order)  # (B, T, S)


def _group_distance(w, u, distance):
    """D between every student and every teacher of one size.

    Args:
        w (Tensor): student values (B, S, P).
        u (Tensor): values of n teachers of that size (B, n, P).
        distance (str): see ``value_distance``.

    Returns:
        Tensor: (B, n, S), equal to ``value_distance(w, u[:, i])`` in
        column i.
    """
    if distance == 'l2':
        return _MeanSquaredDistance.apply(u, w)  # (B, n, S)
    if distance == 'cosine':
        return 1 - torch.bmm(u, w.transpose(1, 2))  # (B, n, S)
    return torch.stack([value_distance(w, u[:, i], distance)
                        for i in range(u.shape[1])], dim=1)  # (B, n, S)


class _MeanSquaredDistance(torch.autograd.Function):
    """D[b, i, s] = mean over P of (w[b, s] - u[b, i]) ** 2, batched.

    The forward expands the square, (|w|^2 + |u|^2 - 2 <u, w>) / P: one
    batched matrix product for all n teachers and S students instead of n
    (B, S, P) differences; rounding can leave a distance a few ulps below
    0, so it is clamped at 0. The backward is dD/dw = 2 (w - u) / P summed
    over i as two matrix products, so no (B, n, S, P) tensor is ever
    formed.
    """

    @staticmethod
    def forward(ctx, u, w):
        ctx.dtypes = u.dtype, w.dtype
        dtype = torch.promote_types(u.dtype, w.dtype)
        u, w = u.to(dtype), w.to(dtype)
        ctx.save_for_backward(u, w)
        norm = torch.linalg.vector_norm  # no temporary of u's or w's size
        squares = (norm(u, dim=2).square_().unsqueeze(2)
                   + norm(w, dim=2).square_().unsqueeze(1))  # (B, n, S)
        dist = torch.baddbmm(squares, u, w.transpose(1, 2), alpha=-2)
        return dist.div_(u.shape[-1]).clamp_min_(0)  # (B, n, S)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        u, w = ctx.saved_tensors
        grad, scale = grad.to(u.dtype), 2 / u.shape[-1]
        grad_u = grad_w = None
        if ctx.needs_input_grad[0]:  # (B, n, P)
            grad_u = (u * grad.sum(2, keepdim=True)).baddbmm_(
                grad, w, alpha=-1).mul_(scale).to(ctx.dtypes[0])
        if ctx.needs_input_grad[1]:  # (B, S, P)
            grad_w = (w * grad.sum(1).unsqueeze(2)).baddbmm_(
                grad.transpose(1, 2), u, alpha=-1).mul_(scale)
            grad_w = grad_w.to(ctx.dtypes[1])
        return grad_u, grad_w


def linked_distance(teacher_groups, v_s, alpha, distance='l2',
                    teacher_sums=None):
    """L_AFD = sum over t of mean over b of sum over s of alpha * D.

    Equal to ``(alpha * grouped_distance_matrix(teacher_groups, v_s,
    distance)).sum(2).mean(0).sum()``, and computed that way for 'l1',
    'kl' and for a pair of sizes that is not an integer ratio in both
    dims. For 'l2' and 'cosine' between sizes of integer ratios, one
    autograd node (``_LinkedDistance``) that never forms a student value
    at a teacher's size: D only needs <w_{s,t}, u_t> and |w_{s,t}|, and
    each inner product is taken at the smaller of the two sizes, where
    the resize of the other side is a block mean or a block sum. The
    gradients are formed in the forward, at the students' sizes, so
    neither the teacher values nor any (B, S, P) tensor is kept for the
    backward: it holds D and one map per student.

    Args:
        teacher_groups (dict): see ``grouped_teacher_values``.
        v_s (list[Tensor]): S student descriptors v(h_s), (B, H_s, W_s).
        alpha (Tensor): the link weights (B, T, S).
        distance (str): see ``value_distance``; default 'l2'.
        teacher_sums (dict, optional): ``teacher_block_sums`` of
            ``teacher_groups`` for the students' sizes, made earlier (e.g.
            right after the teacher's forward); pairs it lacks are formed
            here.

    Returns:
        Tensor: the scalar L_AFD (not yet weighted by beta).
    """
    student_sizes = {tuple(v.shape[-2:]) for v in v_s}
    if not _linked(distance, student_sizes, teacher_groups):
        dist = grouped_distance_matrix(teacher_groups, v_s, distance)
        return (alpha * dist).sum(dim=2).mean(dim=0).sum()
    need_grad = torch.is_grad_enabled() and (
        alpha.requires_grad or any(v.requires_grad for v in v_s))
    return _LinkedDistance.apply(teacher_groups, dict(teacher_sums or {}),
                                 distance, need_grad, alpha, *v_s)


def _linked(distance, student_sizes, teacher_sizes):
    """Whether ``linked_distance`` uses ``_LinkedDistance`` for these."""
    return distance in ('l2', 'cosine') and all(
        _block_ratio(s, t) is not None for s in student_sizes
        for t in teacher_sizes)


@torch.no_grad()
def teacher_block_sums(teacher_groups, student_sizes, distance='l2'):
    """A^T u_t for every teacher size larger than a student size.

    Where a student map is replicated up to a teacher's size (A), the
    inner products <A v_s, u_t> are <v_s, A^T u_t>, A^T u_t being u_t
    summed over each block: formed once per pair of sizes. An AFD loss
    makes them right after the teacher's forward, so their temporaries
    do not add to the memory of the student's.

    Args:
        teacher_groups (dict): see ``grouped_teacher_values``.
        student_sizes (iterable[tuple]): the students' (H_s, W_s).
        distance (str): the distance ``linked_distance`` will compute;
            nothing is formed where it does not read these sums.

    Returns:
        dict: {(teacher size, student size): (B, n, H_s * W_s)} for the
        pairs that ``_block_ratio`` calls 'up'.
    """
    student_sizes = {tuple(size) for size in student_sizes}
    if not _linked(distance, student_sizes, teacher_groups):
        return {}
    sums = {}
    for t_size, (_, u) in teacher_groups.items():
        for s_size in student_sizes:
            kind, blocks = _block_ratio(s_size, t_size)
            if kind == 'up':
                sums[t_size, s_size] = _block_means(
                    u, t_size, blocks).mul_(blocks[0] * blocks[1])
    return sums


def _distance_grad_coefficients(distance, c, x_norm, denom, wu, w_sq,
                                positions):
    """(a summed over teachers, b) of dL/dx = a x + b u for one block.

    Args:
        distance (str): 'l2' or 'cosine'.
        c (Tensor): dL/dD = alpha / B, (B, n_t, n_s).
        x_norm, denom (Tensor): |x| and max(|x|, 1e-12), (B, 1, n_s).
        wu (Tensor): <w, u>, (B, n_t, n_s).
        w_sq (Tensor): |w|^2 (B, 1, n_s), for 'l2'.
        positions (int): P of the teacher maps.

    Returns:
        tuple[Tensor, Tensor]: (B, n_s) and (B, n_t, n_s).
    """
    unclamped = x_norm >= 1e-12  # else the normalisation divided by 1e-12
    if distance == 'l2':  # dD/dx = q (e x - u), q = 2 / (P m)
        q = c * ((2 / positions) / denom)
        e = (w_sq - wu).mul_(unclamped).neg_().add_(1).div_(denom)
        return (q * e).sum(dim=1), q.neg_()
    # cosine: dD/dx = (<w, u> / m^2) x - u / m
    return ((c * unclamped * wu / denom.square()).sum(dim=1),
            (c / denom).neg_())


def _block_index(rows, cols, device):
    """``[:, rows, cols]`` of a (B, T, S) tensor as basic indexing (a view)
    when both position lists are consecutive, else as index tensors
    (rows as a column, so the pair selects the (n_t, n_s) block)."""
    def consecutive(positions):
        return list(positions) == list(
            range(positions[0], positions[0] + len(positions)))

    if consecutive(rows) and consecutive(cols):
        return (slice(None), slice(rows[0], rows[0] + len(rows)),
                slice(cols[0], cols[0] + len(cols)))
    return (slice(None), torch.tensor(rows, device=device)[:, None],
            torch.tensor(cols, device=device))


def _block_ratio(student_size, teacher_size):
    """How a student map of ``student_size`` reaches ``teacher_size``.

    Returns:
        tuple | None: ('equal', None); ('down', (kh, kw)) for a student
        map larger by integer factors (block means); ('up', (rh, rw)) for
        one smaller by integer factors (replication); None otherwise
        (adaptive pooling with bins of unequal size, or a mix).
    """
    (h, w), (th, tw) = student_size, teacher_size
    if (h, w) == (th, tw):
        return 'equal', None
    if h % th == 0 and w % tw == 0 and h >= th and w >= tw:
        return 'down', (h // th, w // tw)
    if th % h == 0 and tw % w == 0 and th >= h and tw >= w:
        return 'up', (th // h, tw // w)
    return None


def _block_means(x, size, blocks):
    """(B, n, P) maps of ``size``, the mean of each (kh, kw) block:
    (B, n, P / (kh kw)).

    Sums of strided slices, one dim at a time: on CPU several times faster
    than ``avg_pool2d`` on these small maps, same values up to rounding.
    """
    (h, w), (kh, kw) = size, blocks
    y = x.view(*x.shape[:2], h, w)
    for dim, k in ((3, kw), (2, kh)):
        if k > 1:
            parts = [y.narrow(dim, j, y.shape[dim] - k + 1)[
                (slice(None), ) * dim + (slice(None, None, k), )]
                for j in range(k)]
            y = parts[0] + parts[1]
            for part in parts[2:]:
                y.add_(part)
    return y.div_(kh * kw).flatten(2)


class _LinkedDistance(torch.autograd.Function):
    """``linked_distance`` for 'l2' / 'cosine' and integer size ratios.

    For student s and teacher t, x = A v_s is the student's map resized to
    the teacher's size (A: block means or replication), w = x / m with
    m = max(|x|, 1e-12), u the unit teacher value and P its positions::

        l2:     D = (|w|^2 + |u|^2 - 2 <x, u> / m) / P   (clamped at 0)
        cosine: D = 1 - <x, u> / m

    where <x, u> = <v_s, A^T u> and |x| = sqrt(r) |v_s| when A replicates
    r times, and both are taken at the teacher's size when A takes block
    means. dL/dx = a x + b u per (sample, teacher, student) with scalars
    a, b (the normalisation's backward folded in), so dL/dv_s = sum_t
    a A^T A v_s + b A^T u_t: a batched matrix product per pair of sizes,
    accumulated in the forward into one map per student, which the
    backward scales by the incoming gradient. For float32 CPU tensors the
    C kernel ``afd_mm.ops.kernel_linked_distance`` computes D and these
    maps sample by sample, with no stacked copy of the student maps and no
    block sums (``_pytorch`` is the path it replaces, and the fallback).
    """

    @staticmethod
    def forward(ctx, teacher_groups, teacher_sums, distance, need_grad,
                alpha, *v_s):
        batch = alpha.shape[0]
        dtype = alpha.dtype
        for v in v_s:
            dtype = torch.promote_types(dtype, v.dtype)
        for _, u in teacher_groups.values():
            dtype = torch.promote_types(dtype, u.dtype)
        weights = alpha.to(dtype) / batch  # dL/dD, (B, T, S)
        student_groups = _group_by_size(v_s)
        fused = kernel_linked_distance(teacher_groups, student_groups, v_s,
                                       alpha, distance == 'cosine',
                                       need_grad)
        if fused is None:
            dist, grads = _LinkedDistance._pytorch(
                teacher_groups, teacher_sums, distance, need_grad, weights,
                student_groups, v_s, dtype)
        else:
            dist, grads = fused
        ctx.dtypes = alpha.dtype, [v.dtype for v in v_s]
        ctx.shapes = [v.shape for v in v_s]
        ctx.places = [(size, idx.index(i)) for i in range(len(v_s))
                      for size, idx in student_groups.items() if i in idx]
        ctx.sizes = list(student_groups)
        saved = [dist] + ([grads[size] for size in ctx.sizes]
                          if need_grad else [])
        ctx.save_for_backward(*saved)
        return (weights * dist).sum()

    @staticmethod
    def _pytorch(teacher_groups, teacher_sums, distance, need_grad, weights,
                 student_groups, v_s, dtype):
        """D (B, T, S) and {student size: dL/dv (B, n_s, P_s)} (None
        without need_grad) by batched PyTorch ops, one pair of sizes at
        a time."""
        batch = weights.shape[0]
        missing = {s for s in student_groups for t in teacher_groups
                   if _block_ratio(s, t)[0] == 'up'
                   and (t, s) not in teacher_sums}
        if missing:
            teacher_sums = {**teacher_sums, **teacher_block_sums(
                teacher_groups, missing, distance)}
        dist = torch.empty_like(weights)  # (B, T, S)
        device = weights.device
        teachers = [(size, idx, u.to(dtype))
                    for size, (idx, u) in teacher_groups.items()]
        # |u|^2: 1, or 0 for an all-zero map; (B, n_t, 1)
        u_sq = [torch.linalg.vector_norm(u, dim=2, keepdim=True).square_()
                for _, _, u in teachers]
        grads = {} if need_grad else None
        for s_size, s_idx in student_groups.items():
            v = torch.stack([v_s[i].to(dtype).flatten(1) for i in s_idx],
                            dim=1)  # (B, n_s, P_s)
            grad = torch.zeros_like(v) if need_grad else None
            for (t_size, t_idx, u), u_sq_t in zip(teachers, u_sq):
                block = _block_index(t_idx, s_idx, device)
                kind, blocks = _block_ratio(s_size, t_size)
                x, u_at, norm_scale = v, u, 1.0
                if kind == 'down':  # block means of v at the teacher's size
                    x = _block_means(v, s_size, blocks)
                elif kind == 'up':  # A^T u: u summed over the copies
                    u_at = teacher_sums[t_size, s_size].to(dtype)
                    norm_scale = math.sqrt(blocks[0] * blocks[1])
                x_norm = torch.linalg.vector_norm(x, dim=2).unsqueeze_(1)
                x_norm.mul_(norm_scale)  # |A v_s|, (B, 1, n_s)
                denom = x_norm.clamp_min(1e-12)
                wu = torch.bmm(u_at, x.transpose(1, 2)).div_(denom)  # <w, u>
                if distance == 'l2':
                    w_sq = (x_norm / denom).square_()  # (B, 1, n_s)
                    d = (w_sq + u_sq_t).sub_(wu, alpha=2).div_(
                        u.shape[2]).clamp_min_(0)
                else:
                    d = 1 - wu
                dist[block] = d  # (B, n_t, n_s)
                if grad is None:
                    continue
                coef_x, coef_u = _distance_grad_coefficients(
                    distance, weights[block], x_norm, denom, wu,
                    w_sq if distance == 'l2' else None, u.shape[2])
                coef_u = coef_u.transpose(1, 2)  # (B, n_s, n_t)
                if kind == 'down':  # A^T y: y over each block / (kh kw)
                    part = torch.baddbmm(x * coef_x.unsqueeze(2), coef_u, u)
                    (out_h, out_w), (kh, kw) = t_size, blocks
                    spread = grad.view(batch, -1, out_h, kh, out_w, kw)
                    spread.add_(part.view(batch, -1, out_h, 1, out_w, 1),
                                alpha=1 / (kh * kw))
                else:  # A^T A v = v (equal) or r v (replication)
                    scale = 1.0 if kind == 'equal' else float(
                        blocks[0] * blocks[1])
                    grad.baddbmm_(coef_u, u_at).addcmul_(
                        v, coef_x.unsqueeze(2), value=scale)
            if need_grad:
                grads[s_size] = grad
        return dist, grads

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        dist, *grads = ctx.saved_tensors
        batch = dist.shape[0]
        alpha_dtype, v_dtypes = ctx.dtypes
        grad_alpha = None
        if ctx.needs_input_grad[4]:
            grad_alpha = (dist * (grad / batch)).to(alpha_dtype)
        grads = dict(zip(ctx.sizes, grads))
        grad_v = []
        for i, (size, j) in enumerate(ctx.places):
            if not ctx.needs_input_grad[5 + i] or not grads:
                grad_v.append(None)
                continue
            g = (grads[size][:, j] * grad).view(ctx.shapes[i])
            grad_v.append(g.to(v_dtypes[i]))
        return (None, None, None, None, grad_alpha, *grad_v)
