"""DIST: distillation from a stronger teacher (Huang et al., 2022).

"Knowledge Distillation from A Stronger Teacher", NeurIPS 2022: instead of
matching the teacher's probabilities exactly (KL), the student keeps their
relations: the Pearson correlation with the teacher's prediction of each
sample (inter-class relation) and of each class over the batch
(intra-class relation).
"""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from afd_mm.registry import MODELS

from .kd_loss import check_logit_shapes

EPS = 1e-8  # the DIST release's epsilon of the cosine


def pearson_rows(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``.

    Args:
        a (Tensor): (N, M).
        b (Tensor): (N, M).

    Returns:
        Tensor: (N,) correlations: cosine of the mean-centred rows.
    """
    a = a - a.mean(dim=1, keepdim=True)  # (N, M)
    b = b - b.mean(dim=1, keepdim=True)  # (N, M)
    return F.cosine_similarity(a, b, dim=1, eps=EPS)


def dist_loss(student_logits: Tensor, teacher_logits: Tensor,
              beta: float = 2.0, gamma: float = 2.0,
              temperature: float = 4.0) -> Tensor:
    """T^2 * (beta * L_inter + gamma * L_intra) (Eq. 6, 8, 9).

    With Y = softmax(Z / T) (B, K): L_inter = 1 - mean_i rho(Y_s[i, :],
    Y_t[i, :]) over the B samples, L_intra = 1 - mean_j rho(Y_s[:, j],
    Y_t[:, j]) over the K classes, rho the Pearson correlation. Scaled by
    T^2 as in the DIST release.

    Args:
        student_logits (Tensor): (B, K) student logits.
        teacher_logits (Tensor): (B, K) teacher logits.
        beta (float): weight of the inter-class term. Defaults to 2.0
            (DIST paper, CIFAR-100; 1 on ImageNet).
        gamma (float): weight of the intra-class term. Defaults to 2.0
            (CIFAR-100; 1 on ImageNet).
        temperature (float): T > 0. Defaults to 4.0 (CIFAR-100; 1 on
            ImageNet).

    Returns:
        Tensor: scalar.
    """
    y_s = F.softmax(student_logits / temperature, dim=1)  # (B, K)
    y_t = F.softmax(teacher_logits / temperature, dim=1)  # (B, K)
    inter = 1 - pearson_rows(y_s, y_t).mean()
    intra = 1 - pearson_rows(y_s.t(), y_t.t()).mean()  # over (K, B)
    return temperature**2 * (beta * inter + gamma * intra)


@MODELS.register_module()
class DISTLoss(nn.Module):
    """DIST's relation loss on the recorded logits.

    Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS
    2022; see ``dist_loss``. Like ``afd_mm.KDLoss`` the candidates are the
    logits: the recorders hook the classifier's last layer
    (``patterns=['head.fc']`` for mmpretrain's ``LinearClsHead``) and only
    the LAST candidate of each list is used. DIST replaces KD: configure it
    with the distiller's ``kd_weight=0``. Needs at least 2 samples per
    batch (the intra-class correlation is over the batch).

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            without the batch dimension, from the distiller's probe; the last
            must be ``(K,)``.
        student_shapes (list[tuple[int]]): same for the student; its last
            must equal the teacher's.
        loss_weight (float): overall coefficient. Defaults to 1.0 (beta and
            gamma are the weights).
        beta (float): inter-class weight. Defaults to 2.0 (CIFAR-100; the
            paper's ImageNet runs use 1).
        gamma (float): intra-class weight. Defaults to 2.0 (CIFAR-100;
            ImageNet 1).
        temperature (float): T > 0. Defaults to 4.0 (CIFAR-100; ImageNet 1).
    """

    loss_name = 'loss_dist'

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=1.0,
                 beta=2.0, gamma=2.0, temperature=4.0):
        super().__init__()
        check_logit_shapes('DISTLoss', teacher_shapes, student_shapes)
        if temperature <= 0:
            raise ValueError(
                f'DISTLoss needs `temperature` > 0, got {temperature}.')
        self.loss_weight = loss_weight
        self.beta = beta
        self.gamma = gamma
        self.temperature = temperature

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """Weighted DIST loss of the last candidates.

        Args:
            teacher_feats (list[Tensor]): teacher candidates; the last is the
                (B, K) teacher logits (no gradient).
            student_feats (list[Tensor]): student candidates; the last is the
                (B, K) student logits.
            data_samples (list[DataSample] | None): unused.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        s_logits = student_feats[-1]  # (B, K)
        if len(s_logits) < 2:
            raise ValueError(
                f'DISTLoss needs at least 2 samples per batch, got '
                f'{len(s_logits)}: raise `train_dataloader.batch_size`, or '
                'set `drop_last=True` in it.')
        loss = dist_loss(s_logits, teacher_feats[-1].detach(), self.beta,
                         self.gamma, self.temperature)
        return self.loss_weight * loss
