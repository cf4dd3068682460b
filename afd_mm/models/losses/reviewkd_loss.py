"""ReviewKD: knowledge review (Chen et al., 2021).

"Distilling Knowledge via Knowledge Review", CVPR 2021: each teacher level
is taught by a fusion of the student's features of the same AND deeper
levels. Attention-based fusion (ABF) modules merge the student's levels
from the deepest to the shallowest (the review path), and a hierarchical
context loss (HCL) compares each fused map with the teacher's map of that
level at several pyramid scales.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from afd_mm.registry import MODELS

PYRAMID = (4, 2, 1)  # HCL's pooled sizes (paper section 3.3, release)


def hcl_loss(student_map: Tensor, teacher_map: Tensor) -> Tensor:
    """Hierarchical context loss of one level (paper Eq. 6).

    MSE of the maps, plus the MSE of both average-pooled to l x l for each
    l in ``PYRAMID`` smaller than the map's height, with weights 1, 1/2,
    1/4, ... in that order; divided by the sum of the weights.

    Args:
        student_map (Tensor): (B, C, H, W) fused student map.
        teacher_map (Tensor): (B, C, H, W) teacher map.

    Returns:
        Tensor: scalar.
    """
    loss = F.mse_loss(student_map, teacher_map)
    weight, total = 1.0, 1.0
    for size in PYRAMID:
        if size >= student_map.shape[2]:
            continue
        weight /= 2
        loss = loss + weight * F.mse_loss(
            F.adaptive_avg_pool2d(student_map, size),
            F.adaptive_avg_pool2d(teacher_map, size))
        total += weight
    return loss / total


class ABF(nn.Module):
    """Attention-based fusion of one level with the deeper levels' result.

    x (this level, C_in channels) -> 1x1 conv + BN to ``mid`` channels;
    with a deeper result y (``mid`` channels, resized to x's size, nearest),
    two spatial attention maps a = sigmoid(conv1x1([x, y])) fuse them:
    ``x * a[0] + y * a[1]``. The fused map (resized to the teacher's size
    when they differ) is passed on as the next level's y, and a 3x3 conv +
    BN maps it to the teacher's C_out channels.

    Args:
        in_channels (int): C_in, the student level's channels.
        mid_channels (int): channels of the review path.
        out_channels (int): C_out, the teacher level's channels.
        fuse (bool): whether a deeper level is fused in (all but the
            deepest).
    """

    def __init__(self, in_channels, mid_channels, out_channels, fuse):
        super().__init__()
        self.reduce = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, 1, bias=False),
            nn.BatchNorm2d(mid_channels))
        self.out = nn.Sequential(
            nn.Conv2d(mid_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels))
        self.att = nn.Sequential(
            nn.Conv2d(mid_channels * 2, 2, 1), nn.Sigmoid()) if fuse else None
        nn.init.kaiming_uniform_(self.reduce[0].weight, a=1)  # release init
        nn.init.kaiming_uniform_(self.out[0].weight, a=1)

    def forward(self, x, deeper=None, out_size=None):
        """(output (B, C_out, H', W') at the teacher's size, fused map)."""
        x = self.reduce(x)  # (B, mid, H, W)
        if self.att is not None:
            deeper = F.interpolate(deeper, size=x.shape[2:], mode='nearest')
            a = self.att(torch.cat([x, deeper], dim=1))  # (B, 2, H, W)
            x = x * a[:, 0:1] + deeper * a[:, 1:2]
        if out_size is not None and tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, size=out_size, mode='nearest')
        return self.out(x), x


def _as_map_shape(shape, who, index):
    """(C, H, W) as is; a (C,) vector (pooled feature) as (C, 1, 1)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return shape + (1, 1)
    if len(shape) != 3:
        raise ValueError(
            f'ReviewKDLoss needs (C, H, W) maps or (C,) vectors, but {who} '
            f'candidate {index} has shape {shape}: change the {who}_recorder'
            "'s `patterns`.")
    return shape


@MODELS.register_module()
class ReviewKDLoss(nn.Module):
    """ReviewKD: ABF review path from the student to the teacher's levels.

    Chen, Liu, Zhao, Jia, "Distilling Knowledge via Knowledge Review", CVPR
    2021, as in the authors' release and mdistiller. The i-th student
    candidate is paired with the i-th teacher candidate (a level); both
    lists are in network order, of equal length, e.g. the stage ends plus
    the pooled feature (``patterns=['backbone.layer*.<last>', 'neck']``; a
    (C,) vector counts as a (C, 1, 1) map). Level by level from the
    deepest, an ``ABF`` fuses the student's level with the review path of
    the deeper levels; its output, brought to the teacher's channels and
    size, is compared with the teacher's level by ``hcl_loss``; the loss
    is the sum over levels. The paper ramps the loss up linearly over the
    first 20 epochs (CIFAR-100; 1 on ImageNet): add
    ``afd_mm.DistillScheduleHook`` with ``warmup_epochs`` for that.

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            without the batch dimension, (C, H, W) or (C,), from the
            distiller's probe.
        student_shapes (list[tuple[int]]): same for the student; same
            length as ``teacher_shapes``.
        loss_weight (float): coefficient of the loss. Defaults to 1.0
            (mdistiller's ``REVIEWKD_WEIGHT`` on CIFAR-100 and ImageNet).
        mid_channels (int, optional): channels of the review path. Defaults
            to None: ``min(max_mid_channels, C of the deepest student
            level)`` (the release).
        max_mid_channels (int): cap of the default ``mid_channels``.
            Defaults to 512 (the release).
    """

    loss_name = 'loss_reviewkd'

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=1.0,
                 mid_channels=None, max_mid_channels=512):
        super().__init__()
        if len(teacher_shapes) != len(student_shapes) or not teacher_shapes:
            raise ValueError(
                'ReviewKDLoss pairs candidates level by level and needs '
                f'equal, non-zero counts, got {len(teacher_shapes)} teacher '
                f'and {len(student_shapes)} student candidates: change the '
                "recorders' `patterns` or `indices`.")
        t_shapes = [_as_map_shape(s, 'teacher', i)
                    for i, s in enumerate(teacher_shapes)]
        s_shapes = [_as_map_shape(s, 'student', i)
                    for i, s in enumerate(student_shapes)]
        if mid_channels is None:
            mid_channels = min(max_mid_channels, s_shapes[-1][0])
        self.loss_weight = loss_weight
        self.out_sizes = [tuple(s[1:]) for s in t_shapes]
        # abfs[i] serves level i (network order); level -1 has no fusion
        self.abfs = nn.ModuleList(
            ABF(s[0], mid_channels, t[0], fuse=i < len(s_shapes) - 1)
            for i, (s, t) in enumerate(zip(s_shapes, t_shapes)))

    def review(self, student_feats):
        """The fused student maps, one per level, in network order.

        Args:
            student_feats (list[Tensor]): L student candidates, (B, C, H, W)
                or (B, C).

        Returns:
            list[Tensor]: L maps (B, C_t, H_t, W_t), the teacher's shapes.
        """
        feats = [f if f.dim() == 4 else f[:, :, None, None]
                 for f in student_feats]
        outs, path = [None] * len(feats), None
        for i in reversed(range(len(feats))):  # deepest first
            outs[i], path = self.abfs[i](feats[i], path, self.out_sizes[i])
        return outs

    def forward(self, teacher_feats, student_feats, data_samples=None):
        """Weighted sum over levels of the HCL losses.

        Args:
            teacher_feats (list[Tensor]): L teacher candidates (B, C_t, H_t,
                W_t) or (B, C_t) (no gradient).
            student_feats (list[Tensor]): L student candidates.
            data_samples (list[DataSample] | None): unused.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        fused = self.review(student_feats)
        loss = sum(hcl_loss(s, (t if t.dim() == 4 else t[:, :, None, None])
                            .detach())
                   for s, t in zip(fused, teacher_feats))
        return self.loss_weight * loss
