"""AFD's descriptors and distances, as pure functions (spec sections 2, 3).

Symbols: B batch, T teacher candidates, S student candidates, C channels,
H x W a map's spatial size, P = H_t * W_t positions of a teacher map.

* ``global_descriptor``  g(h): mean over H and W, feeds queries and keys.
* ``spatial_descriptor`` v(h): a channel pooling of |h|, the value maps.
* ``teacher_values`` u_t and ``student_values`` w_{s,t}: value maps at the
  teacher's size, flattened and L2-normalised.
* ``value_distance`` D between every student value and one teacher value.
* ``distance_matrix`` D[b, t, s] for all pairs, with the student values
  computed once per distinct teacher spatial size.
"""
import torch
import torch.nn.functional as F

__all__ = [
    'POOLINGS', 'DISTANCES', 'global_descriptor', 'spatial_descriptor',
    'teacher_values', 'student_values', 'value_distance', 'distance_matrix'
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


def teacher_values(v_t):
    """u_t: a teacher's value map flattened and L2-normalised.

    Args:
        v_t (Tensor): the teacher's spatial descriptor (B, H_t, W_t).

    Returns:
        Tensor: (B, P) with P = H_t * W_t, unit L2 norm per sample.
    """
    return F.normalize(v_t.flatten(1), dim=1)  # (B, P)


def student_values(v_s, size):
    """w_{s,t}: every student's value map at one teacher's spatial size.

    Each map is adaptive-average-pooled to ``size`` (a smaller student map
    is up-sampled by replication), flattened and L2-normalised. Call it once
    per distinct teacher size: the result does not depend on anything else
    about the teacher.

    Args:
        v_s (list[Tensor]): the S students' spatial descriptors, each
            (B, H_s, W_s); sizes may differ.
        size (tuple[int, int]): the teacher's (H_t, W_t).

    Returns:
        Tensor: (B, S, P) with P = H_t * W_t, unit L2 norm over P.
    """
    pooled = [
        F.adaptive_avg_pool2d(v.unsqueeze(1), size).flatten(1)  # (B, P)
        for v in v_s
    ]
    return F.normalize(torch.stack(pooled, dim=1), dim=2)  # (B, S, P)


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

    Student values are computed once per distinct teacher spatial size and
    shared by all teachers of that size.

    Args:
        teacher_feats (list[Tensor]): T maps, each (B, C_t, H_t, W_t).
        student_feats (list[Tensor]): S maps, each (B, C_s, H_s, W_s).
        distance (str): see ``value_distance``; default 'l2'.
        pooling (str): see ``spatial_descriptor``; default 'a2'.

    Returns:
        Tensor: (B, T, S).
    """
    v_s = [spatial_descriptor(h, pooling) for h in student_feats]
    w_by_size = {}
    columns = []
    for h_t in teacher_feats:
        v_t = spatial_descriptor(h_t, pooling)  # (B, H_t, W_t)
        size = tuple(v_t.shape[-2:])
        if size not in w_by_size:
            w_by_size[size] = student_values(v_s, size)  # (B, S, P)
        u_t = teacher_values(v_t)  # (B, P)
        columns.append(value_distance(w_by_size[size], u_t, distance))
    return torch.stack(columns, dim=1)  # (B, T, S)
