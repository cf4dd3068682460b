"""Channel-wise distillation (Shu et al., ICCV 2021).

"Channel-wise Knowledge Distillation for Dense Prediction": each channel
of a map is turned into a distribution over its H x W positions (a softmax
with temperature tau), and the student's distribution of channel c is
matched to the teacher's with a KL divergence::

    phi(y)_{c,i} = exp(y_{c,i} / tau) / sum_j exp(y_{c,j} / tau)
    CWD(y_T, y_S) = tau^2 / C * sum_c sum_i phi(y_T)_{c,i}
                        * log(phi(y_T)_{c,i} / phi(y_S)_{c,i})

averaged over the batch and summed over the distilled map pairs (for a
detector, the FPN levels). A student map with other channels than the
teacher's first goes through a 1x1 convolution to the teacher's (the
paper's channel alignment).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from afd_mm.registry import MODELS


def channel_wise_divergence(teacher_map: torch.Tensor,
                            student_map: torch.Tensor,
                            tau: float) -> torch.Tensor:
    """CWD of one map pair, averaged over the batch.

    Args:
        teacher_map (Tensor): (B, C, H, W), no gradient needed.
        student_map (Tensor): (B, C, H, W), same shape.
        tau (float): the temperature.

    Returns:
        Tensor: scalar, tau^2 / (B C) * sum over b, c of the KL divergence
        between the channels' spatial softmaxes.
    """
    batch, channels = teacher_map.shape[:2]
    t = teacher_map.flatten(2) / tau  # (B, C, H W)
    s = student_map.flatten(2) / tau  # (B, C, H W)
    kl = F.softmax(t, dim=2) * (F.log_softmax(t, dim=2) -
                                F.log_softmax(s, dim=2))  # (B, C, H W)
    return tau ** 2 * kl.sum() / (batch * channels)


@MODELS.register_module()
class CWDLoss(nn.Module):
    """Channel-wise distillation loss: candidate i of the teacher with
    candidate i of the student (e.g. FPN level i of both detectors).

    Args:
        teacher_shapes (list[tuple]): the teacher candidates' (C, H, W),
            from the distiller's probe forward.
        student_shapes (list[tuple]): the student candidates' (C, H, W);
            as many as the teacher's, each of the same (H, W) as its
            teacher partner (same stride). Record FPN levels on both sides
            (``patterns='neck.fpn_convs.*'`` in the loss's
            ``student_recorder`` / ``teacher_recorder``).
        tau (float): temperature. Default 1.0 (mmrazor's CWD detection
            configs).
        loss_weight (float): weight of the summed pair losses. Default 10.0
            (mmrazor's CWD detection configs, per FPN level).

    Shapes that cannot be paired raise ValueError at build time; a batch
    whose teacher and student maps differ in size raises at forward.
    """

    loss_name = 'loss_cwd'

    def __init__(self, teacher_shapes, student_shapes, *, tau=1.0,
                 loss_weight=10.0):
        super().__init__()
        _check_pairs(teacher_shapes, student_shapes)
        if tau <= 0:
            raise ValueError(f'CWDLoss `tau`={tau} must be positive.')
        self.tau = float(tau)
        self.loss_weight = loss_weight
        self.align = nn.ModuleList(
            nn.Identity() if s[0] == t[0] else
            nn.Conv2d(s[0], t[0], kernel_size=1)
            for t, s in zip(teacher_shapes, student_shapes))

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """loss_weight * sum over pairs of CWD.

        Args:
            teacher_feats (list[Tensor]): T maps (B, C_t, H, W), detached
                here.
            student_feats (list[Tensor]): T maps (B, C_s, H, W).
            data_samples: unused.
        """
        total = 0.
        for i, (t, s, align) in enumerate(
                zip(teacher_feats, student_feats, self.align)):
            if t.shape[-2:] != s.shape[-2:]:
                raise ValueError(
                    f'CWDLoss pair {i}: teacher map {tuple(t.shape)} and '
                    f'student map {tuple(s.shape)} differ in size; record '
                    'candidates of equal stride on both sides.')
            total = total + channel_wise_divergence(
                t.detach().float(), align(s).float(), self.tau)
        return self.loss_weight * total


def _check_pairs(teacher_shapes, student_shapes):
    if len(teacher_shapes) != len(student_shapes) or not teacher_shapes:
        raise ValueError(
            f'CWDLoss pairs candidate i of the teacher with candidate i of '
            f'the student, but got {len(teacher_shapes)} teacher and '
            f'{len(student_shapes)} student candidates; record the same '
            "levels on both sides (e.g. patterns='neck.fpn_convs.*' in the "
            'loss\'s student_recorder and teacher_recorder).')
    for i, (t, s) in enumerate(zip(teacher_shapes, student_shapes)):
        if len(t) != 3 or len(s) != 3 or tuple(t[1:]) != tuple(s[1:]):
            raise ValueError(
                f'CWDLoss pair {i}: teacher candidate {tuple(t)} and student '
                f'candidate {tuple(s)} are not (C, H, W) maps of one size; '
                'record candidates of equal stride (FPN levels) on both '
                'sides.')
