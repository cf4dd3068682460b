"""Relational knowledge distillation (Park et al., 2019).

"Relational Knowledge Distillation", CVPR 2019: the student matches the
teacher's distance-wise (pairs) and angle-wise (triplets) relations between
the embeddings of the samples of a batch.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from afd_mm.registry import MODELS


def pairwise_distances(emb: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distances between rows, zero on the diagonal.

    Args:
        emb (Tensor): (B, C) embeddings.
        eps (float): lower clamp of the squared distance, keeping the square
            root differentiable. Defaults to 1e-12 (RepDistiller).

    Returns:
        Tensor: (B, B) distances.
    """
    sq = emb.pow(2).sum(dim=1)  # (B,)
    dist2 = sq[:, None] + sq[None, :] - 2 * emb @ emb.t()  # (B, B)
    dist = dist2.clamp(min=eps).sqrt()
    eye = torch.eye(len(emb), dtype=torch.bool, device=emb.device)
    return dist.masked_fill(eye, 0.0)


def normalized_distances(emb: Tensor) -> Tensor:
    """Pairwise distances divided by the mean of the non-zero ones: (B, B)."""
    dist = pairwise_distances(emb)  # (B, B)
    return dist / dist[dist > 0].mean()


def angles(emb: Tensor) -> Tensor:
    """Cosines of the angle at vertex i between j and k, for all (i, j, k).

    Args:
        emb (Tensor): (B, C) embeddings e.

    Returns:
        Tensor: (B, B, B), entry [i, j, k] = cos angle(e_j - e_i, e_k - e_i);
        0 where j = i or k = i.
    """
    diff = F.normalize(emb[None, :, :] - emb[:, None, :], dim=2)  # (B, B, C)
    return diff @ diff.transpose(1, 2)  # (B, B, B)


def rkd_distance_loss(student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
    """Smooth L1 between mean-normalised distance matrices, mean over B*B.

    Args:
        student_emb (Tensor): (B, C_s) student embeddings.
        teacher_emb (Tensor): (B, C_t) teacher embeddings.

    Returns:
        Tensor: scalar.
    """
    return F.smooth_l1_loss(normalized_distances(student_emb),
                            normalized_distances(teacher_emb))


def rkd_angle_loss(student_emb: Tensor, teacher_emb: Tensor) -> Tensor:
    """Smooth L1 between the angle cosines of all triplets, mean over B^3.

    Args:
        student_emb (Tensor): (B, C_s) student embeddings.
        teacher_emb (Tensor): (B, C_t) teacher embeddings.

    Returns:
        Tensor: scalar.
    """
    return F.smooth_l1_loss(angles(student_emb), angles(teacher_emb))


def _embedding(feat: Tensor) -> Tensor:
    """(B, C) as is, or a (B, C, H, W) map global-average-pooled to (B, C)."""
    return feat.mean(dim=(2, 3)) if feat.dim() == 4 else feat.flatten(1)


@MODELS.register_module()
class RKDLoss(nn.Module):
    """Relational KD on the penultimate embedding (distance + angle).

    Park et al., "Relational Knowledge Distillation", CVPR 2019, as in
    RepDistiller's ``RKDLoss``. Only the LAST candidate of each list is
    used: a (B, C) vector, or a (B, C, H, W) map that is global-average-pooled
    first (RepDistiller uses the pooled feature before the classifier). The
    loss is ``loss_weight * (distance_weight * L_D + angle_weight * L_A)``
    with L_D the smooth L1 between the pairwise distances each normalised by
    their mean (over the B*B entries, diagonal included) and L_A the smooth
    L1 between the cosines of the angles of all B^3 ordered triplets
    (degenerate triplets count as 0 on both sides, as in RepDistiller).
    Needs at least 2 samples per batch.

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            without the batch dimension, from the distiller's probe; only the
            last is used.
        student_shapes (list[tuple[int]]): same for the student.
        loss_weight (float): overall coefficient. Defaults to 1.0
            (RepDistiller ``-b 1`` for ``rkd``: the weights are inside).
        distance_weight (float): weight of L_D. Defaults to 25.0 (RKD paper,
            RepDistiller ``w_d``).
        angle_weight (float): weight of L_A. Defaults to 50.0 (RKD paper,
            RepDistiller ``w_a``).
    """

    loss_name = 'loss_rkd'

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=1.0,
                 distance_weight=25.0, angle_weight=50.0):
        super().__init__()
        if not teacher_shapes or not student_shapes:
            raise ValueError(
                'RKDLoss needs at least one teacher and one student '
                f'candidate, got {len(teacher_shapes)} and '
                f"{len(student_shapes)}: point the recorders' `patterns` at "
                'the penultimate features.')
        for who, shape in (('teacher', teacher_shapes[-1]),
                           ('student', student_shapes[-1])):
            if len(shape) not in (1, 3):
                raise ValueError(
                    f'RKDLoss needs the last {who} candidate to be (C,) or '
                    f'(C, H, W), got {tuple(shape)}: change the '
                    f"{who}_recorder's `patterns`.")
        self.loss_weight = loss_weight
        self.distance_weight = distance_weight
        self.angle_weight = angle_weight

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """Weighted RKD loss of the last candidates.

        Args:
            teacher_feats (list[Tensor]): teacher candidates; the last is
                (B, C_t) or (B, C_t, H, W) (no gradient).
            student_feats (list[Tensor]): student candidates; the last is
                (B, C_s) or (B, C_s, H, W).
            data_samples (list[DataSample] | None): unused.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        t_emb = _embedding(teacher_feats[-1].detach())  # (B, C_t)
        s_emb = _embedding(student_feats[-1])  # (B, C_s)
        if len(s_emb) < 2:
            raise ValueError(
                f'RKDLoss needs at least 2 samples per batch, got {len(s_emb)}'
                ': raise `train_dataloader.batch_size`, or set '
                '`drop_last=True` in it if the last batch holds one sample.')
        loss = (self.distance_weight * rkd_distance_loss(s_emb, t_emb)
                + self.angle_weight * rkd_angle_loss(s_emb, t_emb))
        return self.loss_weight * loss
