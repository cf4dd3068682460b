"""AFDLoss: owns the meta-network; the only place L_AFD is reduced."""
import torch
from torch import nn

from afd_mm.registry import MODELS

from ..attention import LINEAR_INITS, AFDAttention
from ..distance import DISTANCES, Descriptors, check_choice, distance_matrix
from ..links import FIXED_LINKS, FixedLinks

LINKS = ('afd', ) + FIXED_LINKS


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


def _full_precision(xs, detach=False):
    """float16 / bfloat16 tensors (from autocast) as float32; ``detach``:
    cut any gradient path (the teacher's)."""
    xs = [x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
          for x in xs]
    return [x.detach() if detach and x.requires_grad else x for x in xs]


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
    3; ``distance.distance_matrix``). Gradient reaches the student through
    both D and alpha; the teacher feats are detached. The meta-network is
    the only trainable part and gets its gradient from this loss alone.

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
            from ``links_file``; see ``links.fixed_links``.
        links_file (str, optional): the .pt/.npy link matrix for
            ``links='fixed'``, e.g. the averaged alpha saved by an earlier
            AFD run; only valid with that mode. Default: None.
        link_seed (int): the seed of ``links='random'``. Default: 0.
        linear_init (str): 'default' (PyTorch's init, the release's
            behaviour) or 'xavier' (the paper's appendix) for the
            meta-network's Linear layers. Default: 'default'.

    Attributes:
        feature_transform (Descriptors): what the distiller's recorders
            apply to each candidate map as it is recorded: the
            ``MapDescriptors`` (g(h), v(h)) that ``forward`` takes. The
            teacher's maps are thus freed as soon as they are reduced.
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
        check_choice('distance', distance, DISTANCES)
        self.feature_transform = Descriptors(pooling)  # checks `pooling`
        check_choice('links', links, LINKS)
        check_choice('linear_init', linear_init, LINEAR_INITS)
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

    def _check_feats(self, feats, channels, side):
        if len(feats) != len(channels):
            raise ValueError(
                f'AFDLoss was built for {len(channels)} {side} candidates '
                f"but got {len(feats)} {side} feats; the distiller's "
                f'`{side}_recorder` must record the same modules at every '
                f'forward as at the probe forward.')
        for i, (feat, c) in enumerate(zip(feats, channels)):
            if feat.g.dim() != 2 or feat.g.shape[1] != c:
                raise ValueError(
                    f'{side} feat {i} has g(h) of shape '
                    f'{tuple(feat.g.shape)}, expected (B, {c}) as found by '
                    f'the probe forward; the `{side}_recorder` must record '
                    f'the same modules as at the probe forward.')

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """beta * L_AFD for one batch.

        Computed in float32 (float64 inputs stay float64) with autocast
        off: the meta-network's batch statistics and small distances need
        it.

        Args:
            teacher_feats (list[MapDescriptors]): the T teacher candidates'
                (g (B, C_t), v (B, H_t, W_t)), ``feature_transform`` of
                each map, in network order; detached here.
            student_feats (list[MapDescriptors]): the S student
                candidates', likewise.
            data_samples (list[DataSample], optional): unused.

        Returns:
            Tensor: the weighted scalar loss.
        """
        self._check_feats(teacher_feats, self.teacher_channels, 'teacher')
        self._check_feats(student_feats, self.student_channels, 'student')
        device = student_feats[0].g.device.type
        with torch.autocast(device, enabled=False):
            g_t, v_t = (_full_precision(xs, detach=True)
                        for xs in zip(*teacher_feats))
            g_s, v_s = (_full_precision(xs) for xs in zip(*student_feats))
            alpha = self.attention(g_t, g_s)  # (B, T, S)
            dist = distance_matrix(v_t, v_s, self.distance)  # (B, T, S)
            # L_AFD = sum over t of mean over b of sum over s of alpha * D
            l_afd = (alpha * dist).sum(dim=2).mean(dim=0).sum()
        self.last_alpha = alpha.detach().mean(dim=0)  # (T, S)
        return self.loss_weight * l_afd
