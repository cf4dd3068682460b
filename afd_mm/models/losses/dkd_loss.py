"""Decoupled knowledge distillation (Zhao et al., 2022).

"Decoupled Knowledge Distillation", CVPR 2022: the KD loss is split into
a target-class part (TCKD, the binary target / non-target probabilities)
and a non-target part (NCKD, the distribution among the non-target
classes), weighted independently: DKD = alpha * TCKD + beta * NCKD.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from afd_mm.registry import MODELS

from .kd_loss import check_logit_shapes


def hard_labels(data_samples, device, who: str) -> Tensor:
    """(B,) ground-truth class indices of the batch from ``gt_label``.

    Args:
        data_samples (list[DataSample]): the batch's samples.
        device: where the labels go.
        who (str): the loss name for error messages.

    Returns:
        Tensor: (B,) int64 labels.
    """
    if data_samples is None:
        raise ValueError(f'{who} needs the data_samples of the batch (their '
                         '`gt_label`), got None.')
    labels = []
    for i, sample in enumerate(data_samples):
        label = sample.get('gt_label')
        if label is None or label.numel() != 1:
            raise ValueError(
                f'{who} needs one hard label per sample, but data_samples[{i}]'
                f' has gt_label {label!r}: it reads the target class, so it '
                'cannot train on mixed labels; remove Mixup/CutMix from '
                '`model.student.train_cfg.augments`.')
        labels.append(label.reshape(()))
    return torch.stack(labels).to(device=device, dtype=torch.long)


def dkd_loss(student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
             alpha: float = 1.0, beta: float = 8.0,
             temperature: float = 4.0) -> Tensor:
    """(alpha * TCKD + beta * NCKD) * T^2, mean over the batch (Eq. 7).

    With p = softmax(z / T): TCKD = KL(b_t || b_s), b = (p_gt, 1 - p_gt)
    the binary target/non-target probabilities (Eq. 2); NCKD = KL(q_t ||
    q_s), q the softmax over the non-target classes alone (Eq. 3). Both
    are multiplied by T^2 as KD is.

    Args:
        student_logits (Tensor): (B, K) student logits z_s.
        teacher_logits (Tensor): (B, K) teacher logits z_t.
        target (Tensor): (B,) ground-truth classes.
        alpha (float): weight of TCKD. Defaults to 1.0 (DKD paper).
        beta (float): weight of NCKD. Defaults to 8.0 (DKD paper, CIFAR-100).
        temperature (float): T > 0. Defaults to 4.0 (DKD paper, CIFAR-100).

    Returns:
        Tensor: scalar.
    """
    gt = F.one_hot(target, student_logits.shape[1]).bool()  # (B, K)
    tckd = _binary_kl(student_logits / temperature,
                      teacher_logits / temperature, gt)  # (B,)
    log_q_s = _log_non_target(student_logits / temperature, gt)  # (B, K)
    log_q_t = _log_non_target(teacher_logits / temperature, gt)  # (B, K)
    nckd = (log_q_t.exp() * (log_q_t - log_q_s)).sum(dim=1)  # (B,)
    return (alpha * tckd + beta * nckd).mean() * temperature**2


def _log_non_target(z: Tensor, gt: Tensor) -> Tensor:
    """log softmax over the non-target classes; 0 (not -inf) at the target.

    The target's entry is 0 so that it adds exp(0) * (0 - 0) = 0 to the KL
    sum, with no inf - inf in the forward nor NaN in the backward.
    """
    log_q = F.log_softmax(z.masked_fill(gt, -torch.inf), dim=1)  # (B, K)
    return torch.where(gt, torch.zeros_like(log_q), log_q)


def _binary_kl(z_s: Tensor, z_t: Tensor, gt: Tensor) -> Tensor:
    """KL(b_t || b_s) per sample; b = (p_gt, 1 - p_gt), p = softmax(z)."""
    def log_binary(z):  # (B, 2): log p_gt, log(1 - p_gt)
        log_all = torch.logsumexp(z, dim=1)  # (B,)
        log_gt = z[gt] - log_all  # (B,)
        log_rest = torch.logsumexp(z.masked_fill(gt, -torch.inf), 1) - log_all
        return torch.stack([log_gt, log_rest], dim=1)  # (B, 2)
    log_b_s, log_b_t = log_binary(z_s), log_binary(z_t)
    return (log_b_t.exp() * (log_b_t - log_b_s)).sum(dim=1)  # (B,)


@MODELS.register_module()
class DKDLoss(nn.Module):
    """Decoupled KD on the recorded logits.

    Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022; see
    ``dkd_loss``. Like ``afd_mm.KDLoss`` the candidates are the logits:
    the recorders hook the classifier's last layer (``patterns=['head.fc']``
    for mmpretrain's ``LinearClsHead``) and only the LAST candidate of each
    list is used. The target class comes from each data sample's
    ``gt_label``, so batch augments that mix labels (Mixup/CutMix) are
    refused. DKD replaces KD: configure it with the distiller's
    ``kd_weight=0``. The paper ramps the loss up linearly over its first
    20 epochs (1 on ImageNet): add ``afd_mm.DistillScheduleHook`` with
    ``warmup_epochs`` for that.

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            without the batch dimension, from the distiller's probe; the last
            must be ``(K,)``.
        student_shapes (list[tuple[int]]): same for the student; its last
            must equal the teacher's.
        loss_weight (float): overall coefficient. Defaults to 1.0 (the DKD
            release has none: alpha and beta are the weights).
        alpha (float): TCKD weight. Defaults to 1.0 (paper, all settings).
        beta (float): NCKD weight. Defaults to 8.0 (paper, CIFAR-100; the
            release uses 2 for ResNet-56/110 teachers, 6 for WRN-40-2, 0.5
            on ImageNet).
        temperature (float): T > 0. Defaults to 4.0 (CIFAR-100; 1 on
            ImageNet).
    """

    loss_name = 'loss_dkd'

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=1.0,
                 alpha=1.0, beta=8.0, temperature=4.0):
        super().__init__()
        check_logit_shapes('DKDLoss', teacher_shapes, student_shapes)
        if temperature <= 0:
            raise ValueError(
                f'DKDLoss needs `temperature` > 0, got {temperature}.')
        self.loss_weight = loss_weight
        self.alpha = alpha
        self.beta = beta
        self.temperature = temperature

    def forward(self, teacher_feats, student_feats, data_samples):
        """Weighted DKD loss of the last candidates.

        Args:
            teacher_feats (list[Tensor]): teacher candidates; the last is the
                (B, K) teacher logits (no gradient).
            student_feats (list[Tensor]): student candidates; the last is the
                (B, K) student logits.
            data_samples (list[DataSample]): the batch, with ``gt_label``.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        s_logits = student_feats[-1]  # (B, K)
        target = hard_labels(data_samples, s_logits.device, 'DKDLoss')
        loss = dkd_loss(s_logits, teacher_feats[-1].detach(), target,
                        self.alpha, self.beta, self.temperature)
        return self.loss_weight * loss
