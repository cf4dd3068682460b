"""What AFD compares and how far apart it is (spec sections 2 and 3).

Symbols: B batch, T teacher candidates, S student candidates, C channels,
H x W a map's spatial size, P = H_t * W_t positions of a teacher map.

Plain functions, read top to bottom as the spec states them:

* ``global_descriptor`` g(h) and ``spatial_descriptor`` v(h);
  ``Descriptors`` (a recorder transform) keeps just these two of a map;
* ``teacher_values`` u_t and ``student_values`` w_{s,t}, flattened and
  L2-normalised, the students' at one teacher's spatial size (from their
  maps stacked once, ``stack_by_size``);
* ``value_distance`` D between teacher and student values;
* ``distance_matrix`` D[b, t, s] for every pair, consecutive teachers of
  one spatial size batched together and the student values formed once
  per size.
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    'POOLINGS', 'DISTANCES', 'check_choice', 'global_descriptor',
    'spatial_descriptor', 'MapDescriptors', 'Descriptors', 'teacher_values',
    'runs_by_size', 'stack_by_size', 'student_values', 'value_distance',
    'distance_matrix'
]

POOLINGS = ('a2', 'a1', 'max')
DISTANCES = ('l2', 'l1', 'kl', 'cosine')

# the smallest mass of a value map read as a distribution ('kl') and the
# smallest probability inside its log: an all-zero map stays finite
_KL_EPS = 1e-12
# added, squared, to a squared norm: an all-zero row stays zero, not NaN
_NORM_EPS = 1e-12


def check_choice(key, value, allowed):
    """Refuse an AFDLoss option ``key`` whose ``value`` is not allowed."""
    if value not in allowed:
        raise ValueError(
            f'{key}={value!r} is not supported; choose one of {allowed} '
            f'(the `{key}` key of AFDLoss).')


def global_descriptor(h):
    """g(h): the mean of a feature map over its positions.

    Args:
        h (Tensor): (B, C, H, W).

    Returns:
        Tensor: (B, C).
    """
    return h.mean(dim=(2, 3))  # (B, C)


def spatial_descriptor(h, pooling='a2'):
    """v(h): a feature map pooled over its channels.

    Args:
        h (Tensor): (B, C, H, W).
        pooling (str): 'a2' (default, spec) mean over C of h ** 2; 'a1'
            mean over C of |h|; 'max' max over C of |h| (paper Table 7).

    Returns:
        Tensor: (B, H, W), non-negative.
    """
    check_choice('pooling', pooling, POOLINGS)
    if pooling == 'a2':
        return h.pow(2).mean(dim=1)  # (B, H, W)
    if pooling == 'a1':
        return h.abs().mean(dim=1)  # (B, H, W)
    return h.abs().amax(dim=1)  # 'max': (B, H, W)


class MapDescriptors(NamedTuple):
    """What AFD reads of one candidate map h (B, C, H, W).

    Attributes:
        g (Tensor): g(h), (B, C); queries and keys are made from it.
        v (Tensor): v(h), (B, H, W); values are made from it.
    """

    g: torch.Tensor
    v: torch.Tensor


class Descriptors:
    """Recorder transform: a candidate map -> ``MapDescriptors`` (g, v).

    ``AFDLoss.feature_transform``; the distiller hands it to both
    recorders, which apply it to each candidate as its module returns. Only
    g(h) and v(h) are then kept: the teacher's maps are freed at once, and
    the student's maps live on only where the network itself keeps them.

    Args:
        pooling (str): see ``spatial_descriptor``. Default: 'a2'.
    """

    def __init__(self, pooling='a2'):
        check_choice('pooling', pooling, POOLINGS)
        self.pooling = pooling

    def __call__(self, h):
        if h.dim() != 4:
            raise ValueError(
                f'AFD compares feature maps (B, C, H, W) but a candidate '
                f'output has shape {tuple(h.shape)}; change the patterns of '
                f"the distiller's recorders to hook modules that output "
                f'maps (residual blocks, not the pooled neck).')
        return MapDescriptors(global_descriptor(h),
                              spatial_descriptor(h, self.pooling))

    def __repr__(self):
        return f'{type(self).__name__}(pooling={self.pooling!r})'


def _unit(x):
    """Rows of x (..., P) L2-normalised (an all-zero row stays zero).

    x / sqrt(|x|^2 + eps^2): ``F.normalize``'s values within float32
    rounding wherever |x| > 1e-8, with a backward of fewer ops.
    """
    sum_sq = x.square().sum(dim=-1, keepdim=True)  # (..., 1)
    return x * (sum_sq + _NORM_EPS ** 2).rsqrt()  # (..., P)


def teacher_values(stack):
    """u_t for consecutive teachers of one spatial size.

    Args:
        stack (Tensor): n teacher descriptors v(h_t) stacked,
            (B, n, H_t, W_t) (one run of ``runs_by_size``).

    Returns:
        Tensor: (B, n, P), unit L2 norm over the P = H_t * W_t positions.
    """
    return _unit(stack.flatten(2))  # (B, n, P)


def runs_by_size(v):
    """Consecutive maps of one size, in network order.

    Args:
        v (list[Tensor]): maps (B, H, W), network order.

    Yields:
        list[Tensor]: the next n_k maps, all (B, H_k, W_k).
    """
    start = 0
    for end in range(1, len(v) + 1):
        if end == len(v) or v[end].shape != v[start].shape:
            yield v[start:end]
            start = end


def stack_by_size(v):
    """``runs_by_size``, each run stacked: [(B, n_k, H_k, W_k)]."""
    return [torch.stack(run, dim=1) for run in runs_by_size(v)]


def student_values(stacks, size):
    """w_{s,t}: every student's value map at one teacher's spatial size.

    Each map is adaptive-average-pooled to ``size`` (a smaller map is
    up-sampled by replication), flattened and L2-normalised. It depends on
    the teacher only through ``size``: compute it once per distinct size.

    Args:
        stacks (list[Tensor]): the S student descriptors v(h_s) in network
            order, ``stack_by_size``'d: (B, n_k, H_k, W_k) each.
        size (tuple[int, int]): the teacher's (H_t, W_t).

    Returns:
        Tensor: (B, S, P), unit L2 norm over P = H_t * W_t.
    """
    pooled = [v if v.shape[-2:] == size else F.adaptive_avg_pool2d(v, size)
              for v in stacks]  # (B, n_k, H_t, W_t)
    return _unit(torch.cat(pooled, dim=1).flatten(2))  # (B, S, P)


def value_distance(u, w, distance='l2'):
    """D between each teacher value and each student value of one sample.

    Args:
        u (Tensor): teacher values (B, n, P), unit norm over P.
        w (Tensor): student values (B, S, P), unit norm over P.
        distance (str): 'l2' (default, spec): mean over P of (w - u) ** 2;
            'l1': mean over P of |w - u|; 'cosine': 1 - <w, u>; 'kl':
            KL(p_u || p_w) of the maps read as distributions over P
            (divided by their sums; the teacher's is the target, as in
            Hinton's KD), summed over P (paper Table 6).

    Returns:
        Tensor: (B, n, S).
    """
    check_choice('distance', distance, DISTANCES)
    positions = u.shape[-1]
    if distance == 'l2':
        # differences, not |w|^2 + |u|^2 - 2 <w, u>, which loses D to
        # rounding when w is close to u
        diff = torch.cdist(u, w, compute_mode='donot_use_mm_for_euclid_dist')
        return diff.square() / positions  # (B, n, S)
    if distance == 'l1':
        return torch.cdist(u, w, p=1) / positions  # (B, n, S)
    if distance == 'cosine':
        return 1 - u @ w.transpose(1, 2)  # (B, n, S)
    # 'kl'
    p_u = u / u.sum(dim=-1, keepdim=True).clamp_min(_KL_EPS)
    p_w = w / w.sum(dim=-1, keepdim=True).clamp_min(_KL_EPS)
    entropy = torch.xlogy(p_u, p_u).sum(dim=-1, keepdim=True)  # (B, n, 1)
    cross = p_u @ p_w.clamp_min(_KL_EPS).log().transpose(1, 2)
    return entropy - cross  # (B, n, S)


def distance_matrix(v_t, v_s, distance='l2'):
    """D[b, t, s] for every teacher and student candidate.

    Consecutive teachers of one spatial size are compared in one batched
    op, against student values formed once for that size.

    Args:
        v_t (list[Tensor]): T teacher descriptors v(h_t), (B, H_t, W_t).
        v_s (list[Tensor]): S student descriptors v(h_s), (B, H_s, W_s).
        distance (str): see ``value_distance``.

    Returns:
        Tensor: (B, T, S).
    """
    stacks = stack_by_size(v_s)
    w_at = {}  # (H_t, W_t) -> student values at that size, (B, S, P)
    dist = []
    for run in runs_by_size(v_t):  # stacked one run at a time
        size = tuple(run[0].shape[-2:])
        if size not in w_at:
            w_at[size] = student_values(stacks, size)
        u = teacher_values(torch.stack(run, dim=1))  # (B, n, P)
        dist.append(value_distance(u, w_at[size], distance))  # (B, n, S)
    return torch.cat(dist, dim=1)  # (B, T, S)
