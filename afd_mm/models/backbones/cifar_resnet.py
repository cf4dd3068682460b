"""CIFAR ResNet of depth 6n+2 (He et al., 2016), as built by RepDistiller.

The ResNet-20/56/110 teachers and students of the AFD paper's CIFAR-100
tables. Every residual block ``layer{i}.{j}`` returns its activated output,
which is an AFD candidate (spec section 1, post-activation blocks).
"""
import torch.nn as nn
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from afd_mm.registry import MODELS

__all__ = ['CifarResNet', 'BasicBlock', 'check_out_indices']


def check_out_indices(out_indices, num_stages):
    """Return ``out_indices`` as a sorted tuple of stage indices >= 0.

    Args:
        out_indices (int | Sequence[int]): stage indices, negative ones
            counting from the last stage as in Python indexing.
        num_stages (int): number of stages of the backbone.
    """
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    out_indices = tuple(out_indices)
    if not out_indices or any(
            not isinstance(i, int) or not -num_stages <= i < num_stages
            for i in out_indices):
        raise ValueError(
            f'out_indices must be stage indices in [{-num_stages}, '
            f'{num_stages - 1}], got {out_indices!r}: change '
            'backbone.out_indices.')
    return tuple(sorted({i % num_stages for i in out_indices}))


def conv3x3(in_channels, out_channels, stride=1):
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Post-activation block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + sc)``.

    ``sc`` is ``x``, or ``downsample(x)`` (1x1 conv + BN, RepDistiller's
    choice) when the block changes the stride or the width. The block never
    writes into its input: its in-place ops only touch tensors it created,
    so a forward hook may keep the previous block's output as a candidate.

    Args:
        in_channels (int): channels C_in of the input.
        out_channels (int): channels C of the output.
        stride (int): stride of ``conv1`` and of the shortcut. Defaults to 1.
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(
                    in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))

    def forward(self, x):
        """(B, C_in, H, W) -> (B, C, H / stride, W / stride), after ReLU."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity  # in place on ``out`` only, never on ``x``
        return self.relu(out)


@MODELS.register_module()
class CifarResNet(BaseBackbone):
    """CIFAR ResNet of depth 6n+2: ResNet-20, 32, 44, 56, 110, ...

    A 3x3 conv (16 channels) + BN + ReLU stem, then three stages
    ``layer1``-``layer3`` of n :class:`BasicBlock` s with widths 16, 32, 64
    and strides 1, 2, 2; on a 32x32 input the stages give maps of 32x32,
    16x16 and 8x8. Layout, shortcuts (1x1 conv + BN where the shape changes)
    and init follow RepDistiller's ``resnet.py``, the code the AFD release
    builds on, and its module names (``conv1``, ``bn1``, ``layer1.0.conv1``,
    ``layer1.0.downsample.0``, ...) so its checkpoints map key for key
    (its ``fc`` is the classifier's ``head.fc``). With a 100-class linear head
    ResNet-20/56/110 have 278,324 / 861,620 / 1,736,564 parameters.

    AFD candidates (spec section 1) are the block outputs, after the block's
    final ReLU: modules ``layer{i}.{j}``, selected by
    :attr:`candidate_pattern` = ``'layer*.*'`` relative to the backbone
    (``'backbone.layer*.*'`` in a classifier), where ``*`` matches one
    dot-separated part of a module name. ResNet-20 has 9 blocks, ResNet-56 27,
    ResNet-110 54.

    Args:
        depth (int): network depth, 6n+2 with n >= 1 blocks per stage
            (20, 56 and 110 in the paper). Required.
        in_channels (int): channels of the input image. Defaults to 3 (RGB).
        out_indices (int | Sequence[int]): stages (0, 1, 2; negative counts
            from the end) whose outputs ``forward`` returns, in stage order.
            Defaults to ``(2, )``, the last stage, which mmpretrain's
            ``GlobalAveragePooling`` neck and ``LinearClsHead`` expect.
        init_cfg (dict | list[dict] | None): mmengine init config, applied by
            ``init_weights()``. Defaults to Kaiming-normal convs (fan_out,
            relu) and BN weight 1 / bias 0, RepDistiller's init.
    """

    candidate_pattern = 'layer*.*'
    widths = (16, 32, 64)
    strides = (1, 2, 2)

    def __init__(self,
                 depth,
                 in_channels=3,
                 out_indices=(2, ),
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]):
        super().__init__(init_cfg)
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f'CifarResNet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, '
                f'44, 56, 110, ...), got {depth!r}: change backbone.depth.')
        self.depth = depth
        self.out_indices = check_out_indices(out_indices, len(self.widths))
        self.conv1 = conv3x3(in_channels, self.widths[0])
        self.bn1 = nn.BatchNorm2d(self.widths[0])
        self.relu = nn.ReLU(inplace=True)
        num_blocks = (depth - 2) // 6
        channels = self.widths[0]
        for i, (width, stride) in enumerate(zip(self.widths, self.strides)):
            blocks = [BasicBlock(channels, width, stride)]
            blocks += [BasicBlock(width, width) for _ in range(num_blocks - 1)]
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))
            channels = width

    def forward(self, x):
        """Images (B, 3, H, W) -> tuple of the selected stage outputs.

        Stage i gives (B, 16 * 2**i, H / 2**i, W / 2**i).
        """
        x = self.relu(self.bn1(self.conv1(x)))
        outs = []
        for i in range(len(self.widths)):
            x = getattr(self, f'layer{i + 1}')(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
