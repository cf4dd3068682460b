"""Hinton's knowledge distillation on logits (Hinton et al., 2015).

"Distilling the Knowledge in a Neural Network", NIPS 2014 Deep Learning
Workshop. ``kd_loss`` is the pure formula, used by the distiller for its
``kd_weight`` term; ``KDLoss`` wraps it in the loss contract of
``docs/design.md`` for configs that distill logits as the main loss.
"""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from afd_mm.registry import MODELS

STANDARDIZE_EPS = 1e-7  # the logit standardisation release's epsilon


def standardize_logits(logits: Tensor) -> Tensor:
    """Z-score of each row: (z - mean(z)) / (std(z) + eps).

    Sun et al., "Logit Standardization in Knowledge Distillation", CVPR
    2024, Eq. 8: mean and (unbiased) standard deviation over the K classes
    of each sample, eps = 1e-7 as in their release.

    Args:
        logits (Tensor): (B, K) logits z.

    Returns:
        Tensor: (B, K) rows of zero mean and unit standard deviation.
    """
    mean = logits.mean(dim=1, keepdim=True)  # (B, 1)
    std = logits.std(dim=1, keepdim=True)  # (B, 1)
    return (logits - mean) / (std + STANDARDIZE_EPS)


def kd_loss(student_logits: Tensor, teacher_logits: Tensor,
            temperature: float = 4.0, standardize: bool = False) -> Tensor:
    """KL(softmax(z_t / T) || softmax(z_s / T)) * T^2, mean over the batch.

    Same value as RepDistiller's ``DistillKL``: the KL divergence summed over
    classes, averaged over samples, scaled by T^2 so that its gradient keeps
    the magnitude of a T = 1 loss (Hinton et al., 2015, section 2). With
    ``standardize=True`` both logit rows are first replaced by their Z-score
    (``standardize_logits``; Sun et al., CVPR 2024) and T acts as their
    base temperature.

    Args:
        student_logits (Tensor): (B, K) student logits z_s, K classes.
        teacher_logits (Tensor): (B, K) teacher logits z_t.
        temperature (float): softening temperature T > 0. Defaults to 4.0
            (RepDistiller and the AFD release on CIFAR-100).
        standardize (bool): logit standardisation before the softmax.
            Defaults to False (Hinton's KD).

    Returns:
        Tensor: scalar loss.
    """
    if temperature <= 0:
        raise ValueError(
            f'kd_loss needs a temperature > 0, got {temperature}: change '
            '`kd_temperature` (distiller) or `temperature` (KDLoss).')
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            'kd_loss needs student and teacher logits of the same shape, got '
            f'{tuple(student_logits.shape)} and '
            f'{tuple(teacher_logits.shape)}: when the two classifiers have '
            'different classes (transfer learning) there is no KD term; set '
            '`kd_weight=0`.')
    if standardize:
        student_logits = standardize_logits(student_logits)
        teacher_logits = standardize_logits(teacher_logits)
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)  # (B, K)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)  # (B, K)
    kl = F.kl_div(log_p_s, log_p_t, reduction='batchmean', log_target=True)
    return kl * temperature**2


def check_logit_shapes(who: str, teacher_shapes, student_shapes) -> None:
    """The last candidates of both lists must be (K,) logits of equal K."""
    if not teacher_shapes or not student_shapes:
        raise ValueError(
            f'{who} needs at least one teacher and one student candidate, '
            f'got {len(teacher_shapes)} and {len(student_shapes)}: point '
            "the recorders' `patterns` at the classifier, e.g. ['head.fc'].")
    t_shape, s_shape = tuple(teacher_shapes[-1]), tuple(student_shapes[-1])
    if len(t_shape) != 1 or t_shape != s_shape:
        raise ValueError(
            f'{who} distills logits: the last recorded candidates must be '
            f'(K,) vectors of equal K, got teacher {t_shape} and student '
            f"{s_shape}: set the recorders' `patterns` to the classifier's "
            "last layer, e.g. ['head.fc'].")


@MODELS.register_module()
class KDLoss(nn.Module):
    """Hinton's KD as a distillation loss on the recorded logits.

    Hinton et al., "Distilling the Knowledge in a Neural Network", 2015. The
    candidates of this loss are the classifier logits: the recorders must
    hook the head's last layer (e.g. ``patterns=['head.fc']`` for
    mmpretrain's ``LinearClsHead``), so the probe gives shapes ``(K,)`` with
    K classes. Only the LAST candidate of each list is used.

    Use it with the distiller's ``kd_weight=0`` to get the KD baseline
    alone; with ``kd_weight > 0`` the logits would be distilled twice.

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            without the batch dimension, from the distiller's probe; the last
            one must be ``(K,)``.
        student_shapes (list[tuple[int]]): same for the student; its last
            shape must equal the teacher's.
        loss_weight (float): coefficient of the loss in the student
            objective. Defaults to 0.9 (alpha_kd of the AFD release and of
            RepDistiller's KD runs on CIFAR-100).
        temperature (float): softening temperature T > 0. Defaults to 4.0
            (RepDistiller ``--kd_T``; AFD release).
        standardize (bool): logit standardisation (Sun et al., CVPR 2024)
            of both logit rows before the softmax; ``temperature`` is then
            their base temperature (2 in that paper's CIFAR-100 runs).
            Defaults to False.
    """

    loss_name = 'loss_kd_logits'

    def __init__(self, teacher_shapes, student_shapes, *,
                 loss_weight=0.9, temperature=4.0, standardize=False):
        super().__init__()
        check_logit_shapes('KDLoss', teacher_shapes, student_shapes)
        if temperature <= 0:
            raise ValueError(
                f'KDLoss needs `temperature` > 0, got {temperature}.')
        self.loss_weight = loss_weight
        self.temperature = temperature
        self.standardize = standardize

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """Weighted KD loss of the last candidates.

        Args:
            teacher_feats (list[Tensor]): teacher candidates; the last one is
                the (B, K) teacher logits (no gradient).
            student_feats (list[Tensor]): student candidates; the last one is
                the (B, K) student logits.
            data_samples (list[DataSample] | None): unused.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        loss = kd_loss(student_feats[-1], teacher_feats[-1].detach(),
                       self.temperature, self.standardize)
        return self.loss_weight * loss
