"""AFDLoss: owns the meta-network; the only place L_AFD is reduced."""
from typing import NamedTuple

import torch
from torch import nn

from afd_mm.ops import linked_kernel_serves
from afd_mm.registry import MODELS

from ..attention import FIXED_LINKS, LINEAR_INITS, AFDAttention, FixedLinks
from ..distance import (
    DISTANCES,
    POOLINGS,
    grouped_teacher_values,
    linked_distance,
    map_descriptors,
    teacher_block_sums,
)

LINKS = ('afd', ) + FIXED_LINKS


class TeacherDescriptors(NamedTuple):
    """What L_AFD reads of the teacher, from ``AFDLoss.reduce_teacher``.

    Attributes:
        g (list[Tensor]): g(h_t) of the T candidates, each (B, C_t).
        values (dict): the teacher values u_t stacked per spatial size,
            ``{(H_t, W_t): (positions among the T, (B, n, P))}`` (see
            ``distance.grouped_teacher_values``).
        sums (dict): the values summed over blocks for the student sizes
            they are compared at (``distance.teacher_block_sums``); empty
            where the C kernel of ``linked_distance`` will serve the
            values, which reads them directly.
    """

    g: list
    values: dict
    sums: dict


def _check_choice(key, value, allowed):
    if value not in allowed:
        raise ValueError(
            f'{key}={value!r} is not supported; choose one of {allowed} '
            f'(the `{key}` key of AFDLoss).')


def _check_shapes(shapes, side):
    """Candidates must exist and be (C, H, W) maps: D compares maps."""
    recorder = f'{side}_recorder'
    if len(shapes) == 0:
        raise ValueError(
            f'AFDLoss got 0 {side} candidates ({side}_shapes is empty); '
            f"change the patterns of the distiller's `{recorder}` so they "
            f'match at least one module.')
    for i, shape in enumerate(shapes):
        if len(shape) != 3:
            raise ValueError(
                f'AFDLoss needs (C, H, W) feature maps for its distance, but '
                f'{side} candidate {i} has shape {tuple(shape)}; change the '
                f"patterns of the distiller's `{recorder}` to hook modules "
                f'that output maps (residual blocks, not the pooled neck).')


@MODELS.register_module()
class AFDLoss(nn.Module):
    """Attention-based Feature Distillation loss (Ji et al., AAAI 2021).

    Every teacher candidate t is matched to every student candidate s with
    a weight alpha[b, t, s] (a softmax over s, per sample) given by the
    meta-network ``AFDAttention``, or by a constant link matrix for the
    linking ablations::

        L_AFD = sum_t mean_b sum_s alpha[b, t, s] * D[b, t, s]
        loss  = loss_weight * L_AFD

    D compares the channel-pooled, L2-normalised maps of teacher t and of
    student s, the student's resized to the teacher's size (spec section
    3). Gradient reaches the student through both D and alpha; the teacher
    feats are detached. The meta-network is the only trainable part and
    gets its gradient from this loss alone.

    Args:
        teacher_shapes (list[tuple]): the T teacher candidates' shapes
            without the batch dimension, each (C, H, W), in network order.
            Found by the distiller's probe forward (``default_args``); a
            config never sets it.
        student_shapes (list[tuple]): the S student candidates' shapes,
            each (C, H, W); set like ``teacher_shapes``.
        loss_weight (float): beta, the weight of L_AFD in the student
            objective. Default: 200.0 (the release's default on CIFAR-100;
            the paper uses 50 on TinyImageNet/ImageNet, 1000 for transfer).
        embed_dim (int): d, the size of queries and keys. Default: 128
            (paper and release).
        distance (str): D: 'l2' (default, paper and release), 'l1', 'kl'
            or 'cosine' (paper Table 6); see ``distance.value_distance``.
        pooling (str): the channel pooling of the value maps: 'a2'
            (default, paper and release), 'a1' or 'max' (paper Table 7);
            see ``distance.spatial_descriptor``.
        links (str): where alpha comes from (paper Table 4). 'afd'
            (default): the co-trained meta-network. 'ordered': teacher t
            linked to the proportional student. 'random': one-hot links
            drawn once with ``link_seed``. 'fixed': a T x S matrix read
            from ``links_file``; see ``attention.fixed_links``.
        links_file (str, optional): the .pt/.npy link matrix for
            ``links='fixed'``, e.g. the averaged alpha saved by an earlier
            AFD run; only valid with that mode. Default: None.
        link_seed (int): the seed of ``links='random'``. Default: 0.
        linear_init (str): 'default' (PyTorch's init, the release's
            behaviour) or 'xavier' (the paper's appendix) for the
            meta-network's Linear layers. Default: 'default'.

    Attributes:
        last_alpha (Tensor | None): alpha of the last forward averaged over
            the batch, (T, S), detached; None before the first forward.
    """

    loss_name = 'loss_afd'

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=200.0,
                 embed_dim=128, distance='l2', pooling='a2', links='afd',
                 links_file=None, link_seed=0, linear_init='default'):
        super().__init__()
        _check_shapes(teacher_shapes, 'teacher')
        _check_shapes(student_shapes, 'student')
        _check_choice('distance', distance, DISTANCES)
        _check_choice('pooling', pooling, POOLINGS)
        _check_choice('links', links, LINKS)
        _check_choice('linear_init', linear_init, LINEAR_INITS)
        if links_file is not None and links != 'fixed':
            raise ValueError(
                f'links_file={links_file!r} is only read with '
                f"links='fixed', but links={links!r}; set `links` to "
                f"'fixed' or `links_file` to None in the AFDLoss config.")
        if not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(
                f'embed_dim={embed_dim!r} must be a positive int (the '
                f'`embed_dim` key of AFDLoss; the paper uses 128).')
        self.teacher_channels = [int(shape[0]) for shape in teacher_shapes]
        self.student_channels = [int(shape[0]) for shape in student_shapes]
        self.student_sizes = {tuple(int(x) for x in shape[1:])
                              for shape in student_shapes}
        self.loss_weight = loss_weight
        self.distance = distance
        self.pooling = pooling
        self.links = links
        if links == 'afd':
            self.attention = AFDAttention(
                self.teacher_channels, self.student_channels, embed_dim,
                linear_init)
        else:
            self.attention = FixedLinks(
                links, len(teacher_shapes), len(student_shapes), link_seed,
                links_file)
        self.last_alpha = None

    def reduce_feature(self, h):
        """What L_AFD reads of one candidate map: (g(h), v(h)).

        ``forward`` takes these pairs in place of the maps. A distiller
        may have its recorders apply this to each candidate as soon as it
        is produced (``FeatureRecorder.record(reduce=...)``): the teacher's
        maps are then freed at once instead of living through the student's
        forward, and each student map's gradient from L_AFD is formed when
        the backward reaches its block instead of at the start.

        Args:
            h (Tensor): a candidate map (B, C, H, W); anything else is
                returned unchanged, for ``forward`` to report.

        Returns:
            tuple[Tensor, Tensor]: g(h) (B, C) and v(h) (B, H, W).
        """
        if not isinstance(h, torch.Tensor) or h.dim() != 4:
            return h
        return map_descriptors(h, self.pooling)

    @torch.no_grad()
    def reduce_teacher(self, teacher_feats):
        """All the teacher's candidates reduced to what ``forward`` reads.

        Detached g(h_t), and the teacher values u_t (normalised v(h_t))
        stacked per spatial size, which is the only copy of them that
        ``forward`` keeps for the backward. A distiller calls this right
        after the teacher's forward, when its recorded list can be
        dropped, so the list and the stacked copy never both live
        through the student's forward.

        Args:
            teacher_feats (list[Tensor | tuple]): T maps (B, C_t, H_t, W_t)
                or their ``reduce_feature`` pairs.

        Returns:
            TeacherDescriptors: to pass as ``forward``'s teacher_feats.
        """
        self._check_feats(teacher_feats, self.teacher_channels, 'teacher')
        g_t, v_t = self._descriptors(teacher_feats, detach=True)
        values = grouped_teacher_values(v_t)
        sums = {}  # the C kernel of linked_distance reads the values only
        if not linked_kernel_serves(values):
            sums = teacher_block_sums(values, self.student_sizes,
                                      self.distance)
        return TeacherDescriptors(g_t, values, sums)

    def _check_feats(self, feats, channels, side):
        if isinstance(feats, TeacherDescriptors):  # check g (B, C_t)
            feats = [(g, None) for g in feats.g]
        if len(feats) != len(channels):
            raise ValueError(
                f'AFDLoss was built for {len(channels)} {side} candidates '
                f"but got {len(feats)} {side} feats; the distiller's "
                f'`{side}_recorder` must record the same modules at every '
                f'forward as at the probe forward.')
        for i, (h, c) in enumerate(zip(feats, channels)):
            rank = 4
            if isinstance(h, tuple):  # (g, v) of reduce_feature: g (B, C)
                h, rank = h[0], 2
            if h.dim() != rank or h.shape[1] != c:
                shape = tuple(h.shape)
                raise ValueError(
                    f'{side} feat {i} has shape {shape}, expected '
                    f'(B, {c}, H, W) as found by the probe forward; the '
                    f'`{side}_recorder` must record the same modules as '
                    f'at the probe forward.')

    def _descriptors(self, feats, detach):
        """[g] (B, C) and [v] (B, H, W) of maps or ``reduce_feature`` pairs."""
        pairs = []
        for h in feats:
            if not isinstance(h, tuple):
                h = self.reduce_feature(h.detach() if detach else h)
            pairs.append(tuple(x.detach() for x in h) if detach else h)
        return [g for g, _ in pairs], [v for _, v in pairs]

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """beta * L_AFD for one batch.

        Args:
            teacher_feats (list[Tensor | tuple] | TeacherDescriptors): T
                maps (B, C_t, H_t, W_t) in network order, or their
                ``reduce_feature`` pairs, or ``reduce_teacher`` of either;
                detached here.
            student_feats (list[Tensor | tuple]): S maps (B, C_s, H_s, W_s)
                in network order, or their ``reduce_feature`` pairs.
            data_samples (list[DataSample], optional): unused.

        Returns:
            Tensor: the weighted scalar loss.
        """
        if isinstance(teacher_feats, TeacherDescriptors):
            self._check_feats(teacher_feats, self.teacher_channels,
                              'teacher')
        else:  # checked there
            teacher_feats = self.reduce_teacher(teacher_feats)
        self._check_feats(student_feats, self.student_channels, 'student')
        # g(h) (B, C) of every candidate, the teacher values u_t grouped by
        # size and the students' v(h) (B, H, W), each read once
        g_t, u_t, sums_t = teacher_feats
        g_s, v_s = self._descriptors(student_feats, detach=False)
        # the meta-network only reads g(h): (B, C) stands in for each map
        alpha = self.attention(g_t, g_s)  # (B, T, S)
        self.last_alpha = alpha.detach().mean(dim=0)  # (T, S)
        # sum_t mean_b sum_s alpha * D
        l_afd = linked_distance(u_t, v_s, alpha, self.distance, sums_t)
        return self.loss_weight * l_afd
