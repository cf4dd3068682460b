"""FitNets hint loss (Romero et al., 2015).

"FitNets: Hints for Thin Deep Nets", ICLR 2015: a regressor maps one
student ("guided") map to the shape of one teacher ("hint") map and the two
are matched with a squared error. As in RepDistiller, hint and student are
trained jointly (one stage) with weight 100, not in the paper's two stages.
"""
import torch.nn as nn
import torch.nn.functional as F

from afd_mm.registry import MODELS


def _resolve_index(index, shapes, key):
    """Return ``index`` as a non-negative position in ``shapes``.

    ``None`` picks the lower middle candidate, ``(len - 1) // 2``.
    """
    num = len(shapes)
    if index is None:
        index = (num - 1) // 2
    if not -num <= index < num:
        raise ValueError(
            f'FitNetLoss: `{key}={index}` is out of range for {num} recorded '
            f'candidates: use an index in [{-num}, {num - 1}].')
    index %= num
    if len(shapes[index]) != 3:
        raise ValueError(
            f'FitNetLoss needs a (C, H, W) feature map at `{key}` '
            f'(candidate {index}), got shape {tuple(shapes[index])}: change '
            f"`{key}` or the recorder's `patterns`.")
    return index


@MODELS.register_module()
class FitNetLoss(nn.Module):
    """Hint loss: MSE between a regressed student map and a teacher map.

    Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015, in
    RepDistiller's one-stage form (``HintLoss`` + ``ConvReg``). One teacher
    candidate (the hint) is matched with one student candidate (the guided
    layer) through a learned regressor: a 1x1 convolution from the student's
    C_s channels to the teacher's C_t, then BatchNorm2d. When the two maps
    differ in H, W the student map is first adaptive-average-pooled to the
    teacher's size (down-sampling by averaging, up-sampling by replication);
    RepDistiller's ``ConvReg`` uses strided or transposed convolutions
    instead, which only cover size ratios 2 and 1/2.

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            ``(C, H, W)`` without the batch dimension, from the distiller's
            probe.
        student_shapes (list[tuple[int]]): same for the student.
        loss_weight (float): coefficient of the loss in the student
            objective. Defaults to 100.0 (RepDistiller ``-b 100`` for
            ``hint``).
        teacher_index (int | None): which teacher candidate is the hint;
            negative values count from the end. Defaults to None: the middle
            candidate ``(T - 1) // 2``. With the three stage ends of a CIFAR
            ResNet (or the four of an ImageNet ResNet) recorded, this is the
            end of stage 2: RepDistiller's ``--hint_layer 2``.
        student_index (int | None): which student candidate is guided; same
            rule. Defaults to None: ``(S - 1) // 2``.
        with_relu (bool): apply ReLU after the BN, as RepDistiller's
            ``ConvReg(use_relu=True)`` does. Defaults to False (1x1 conv + BN,
            the linear regressor of the FitNets paper).
    """

    loss_name = 'loss_fitnet'

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=100.0,
                 teacher_index=None, student_index=None, with_relu=False):
        super().__init__()
        self.teacher_index = _resolve_index(
            teacher_index, teacher_shapes, 'teacher_index')
        self.student_index = _resolve_index(
            student_index, student_shapes, 'student_index')
        c_t, h_t, w_t = teacher_shapes[self.teacher_index]
        c_s, h_s, w_s = student_shapes[self.student_index]
        self.loss_weight = loss_weight
        self.pool = (nn.AdaptiveAvgPool2d((h_t, w_t))
                     if (h_s, w_s) != (h_t, w_t) else nn.Identity())
        self.conv = nn.Conv2d(c_s, c_t, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(c_t)
        self.with_relu = with_relu

    def regress(self, student_map):
        """Map the (B, C_s, H_s, W_s) student map to (B, C_t, H_t, W_t)."""
        out = self.bn(self.conv(self.pool(student_map)))  # (B, C_t, H_t, W_t)
        return F.relu(out) if self.with_relu else out

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """Weighted hint loss.

        Args:
            teacher_feats (list[Tensor]): teacher candidates, the hint being
                (B, C_t, H_t, W_t) (no gradient).
            student_feats (list[Tensor]): student candidates, the guided one
                being (B, C_s, H_s, W_s).
            data_samples (list[DataSample] | None): unused.

        Returns:
            Tensor: scalar, mean squared error over B, C_t, H_t, W_t, already
            multiplied by ``loss_weight``.
        """
        hint = teacher_feats[self.teacher_index].detach()
        guided = self.regress(student_feats[self.student_index])
        return self.loss_weight * F.mse_loss(guided, hint)
