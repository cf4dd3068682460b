"""Attention transfer (Zagoruyko & Komodakis, 2017).

"Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer", ICLR 2017: the
student matches the teacher's activation-based spatial attention maps at
manually paired layers.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from afd_mm.registry import MODELS


def attention_map(feat: Tensor, p: float = 2.0) -> Tensor:
    """Activation-based attention: channel mean of |f|^p, flat, L2-normed.

    Args:
        feat (Tensor): (B, C, H, W) feature map f.
        p (float): exponent. Defaults to 2.0.

    Returns:
        Tensor: (B, H*W) rows of unit L2 norm.
    """
    amap = feat.abs().pow(p).mean(dim=1)  # (B, H, W)
    return F.normalize(amap.flatten(1), dim=1)  # (B, H*W)


def at_pair_loss(student_feat: Tensor, teacher_feat: Tensor,
                 p: float = 2.0) -> Tensor:
    """Mean over B and H*W of the squared map difference (RepDistiller).

    Args:
        student_feat (Tensor): (B, C_s, H, W) student map.
        teacher_feat (Tensor): (B, C_t, H, W) teacher map.
        p (float): attention exponent. Defaults to 2.0.

    Returns:
        Tensor: scalar.
    """
    diff = attention_map(student_feat, p) - attention_map(teacher_feat, p)
    return diff.pow(2).mean()


@MODELS.register_module()
class ATLoss(nn.Module):
    """Attention transfer between index-paired candidates.

    Zagoruyko & Komodakis, ICLR 2017, as implemented by RepDistiller's
    ``Attention`` (with p = 2 the loss of each pair is
    ``(at(f_s) - at(f_t)).pow(2).mean()``, at = channel mean of |f|^p,
    flattened, L2-normalised); the pair losses are summed. Pairs are fixed
    by position: the i-th teacher candidate goes with the i-th student
    candidate, so the two recorders must give lists of equal length whose
    paired maps have the same H, W. RepDistiller pairs the stage ends (it
    pools the larger map when sizes differ); here unequal sizes are an
    error, so that a mis-paired config is not silently pooled.

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            ``(C, H, W)`` without the batch dimension, from the distiller's
            probe.
        student_shapes (list[tuple[int]]): same for the student; same length
            and, pair by pair, same H, W as ``teacher_shapes``.
        loss_weight (float): coefficient of the loss in the student
            objective. Defaults to 1000.0 (RepDistiller's ``-b 1000`` for
            ``attention``).
        p (float): exponent of |f| in the attention map, > 0. Defaults to 2.0
            (the AT paper and RepDistiller).
    """

    loss_name = 'loss_at'

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=1000.0,
                 p=2.0):
        super().__init__()
        if len(teacher_shapes) != len(student_shapes) or not teacher_shapes:
            raise ValueError(
                'ATLoss pairs candidates index by index and needs equal, '
                f'non-zero counts, got {len(teacher_shapes)} teacher and '
                f'{len(student_shapes)} student candidates: set '
                '`teacher_recorder.indices` and `student_recorder.indices` '
                '(or their `patterns`/`num`) to lists of the same length.')
        for i, (t, s) in enumerate(zip(teacher_shapes, student_shapes)):
            if len(t) != 3 or len(s) != 3 or tuple(t[1:]) != tuple(s[1:]):
                raise ValueError(
                    f'ATLoss pair {i} needs (C, H, W) maps of the same H, W, '
                    f'got teacher {tuple(t)} and student {tuple(s)}: change '
                    '`teacher_recorder.indices` or `student_recorder.indices` '
                    'so that paired candidates have equal spatial size.')
        if p <= 0:
            raise ValueError(f'ATLoss needs `p` > 0, got {p}.')
        self.loss_weight = loss_weight
        self.p = p

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """Weighted sum over pairs of the AT pair losses.

        Args:
            teacher_feats (list[Tensor]): T teacher maps (B, C_t, H, W)
                (no gradient).
            student_feats (list[Tensor]): S = T student maps (B, C_s, H, W).
            data_samples (list[DataSample] | None): unused.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        loss = sum(at_pair_loss(s, t.detach(), self.p)
                   for t, s in zip(teacher_feats, student_feats))
        return self.loss_weight * loss
