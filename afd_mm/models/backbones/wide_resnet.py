"""CIFAR Wide ResNet WRN-d-k (Zagoruyko & Komodakis, 2016).

The WRN-16-2, WRN-28-2 and WRN-40-2 of the AFD paper's CIFAR-100 tables.
Its blocks are pre-activation blocks, so an AFD candidate is
``relu(bn(out_j))`` with the BN that the next block starts with (spec
section 1). Each block therefore ends with that BN + ReLU as a module of its
own, ``post_act``, whose output is the candidate.
"""
import torch.nn as nn
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from afd_mm.registry import MODELS

from .cifar_resnet import check_out_indices

__all__ = ['WideResNet', 'PreActBlock']


def bn_relu(channels):
    """BN + ReLU; in place only on the BN output, never on the input."""
    return nn.Sequential(
        nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class PreActBlock(nn.Module):
    """WRN block followed by its successor's first BN + ReLU.

    The reference block computes ``conv2(relu(bn2(conv1(a)))) + sc`` with
    ``a = relu(bn1(x))``; ``sc`` is ``x``, or ``shortcut(a)`` (1x1 conv) when
    the width or stride changes. Here the leading ``bn1`` + ReLU lives in the
    previous block (or the stem) as ``post_act``, so the block maps the pair
    ``(x, a)`` to ``(out, post_act(out))``: the residual stream and the
    activation the next convolutions see. The block never writes into its
    inputs.

    Args:
        in_channels (int): channels C_in of ``x`` and ``a``.
        out_channels (int): channels C of ``out``.
        stride (int): stride of ``conv1`` and of the shortcut.
        drop_rate (float): dropout probability between the two convs.
    """

    def __init__(self, in_channels, out_channels, stride, drop_rate):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1,
            bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(
                in_channels, out_channels, 1, stride=stride, bias=False)
        self.post_act = bn_relu(out_channels)

    def forward(self, inputs):
        """(x, a), each (B, C_in, H, W) -> (out, a_out), each (B, C, H', W').

        H' = H / stride; ``a_out = relu(bn(out))`` is the AFD candidate.
        """
        x, a = inputs
        out = self.dropout(self.relu(self.bn1(self.conv1(a))))
        out = self.conv2(out)
        out += x if self.shortcut is None else self.shortcut(a)
        return out, self.post_act(out)


@MODELS.register_module()
class WideResNet(BaseBackbone):
    """CIFAR Wide ResNet WRN-depth-widen_factor with pre-activation blocks.

    A 3x3 conv stem (16 channels), then three stages ``layer1``-``layer3`` of
    n = (depth - 4) / 6 blocks with widths 16k, 32k, 64k and strides 1, 2, 2
    (maps of 32x32, 16x16, 8x8 on a 32x32 input), then BN + ReLU. It
    computes exactly the WRN of the authors' and RepDistiller's ``wrn.py``
    (same layers, parameters and init; with a 100-class linear head WRN-16-2
    / 28-2 / 40-2 have 703,284 / 1,479,220 / 2,255,156 parameters), but each
    block's BN + ReLU is moved to the end of the block before it:

    * the first block's ``bn1`` is the stem's ``stem_act.0``;
    * block j's ``bn2`` is its ``bn1``, its ``convShortcut`` its ``shortcut``;
    * block j+1's ``bn1`` is block j's ``post_act.0``; the final ``bn1``
      (before pooling) is the last block's ``post_act.0``.

    So block ``layer{i}.{j}`` maps the pair (residual stream, activation) to
    the next pair, and its module ``layer{i}.{j}.post_act`` outputs
    ``relu(bn(out_j))`` with the next block's first BN (the final BN for the
    last block): the AFD candidate of spec section 1. :attr:`candidate_pattern`
    = ``'layer*.*.post_act'`` (relative to the backbone;
    ``'backbone.layer*.*.post_act'`` in a classifier) selects exactly these,
    n per stage: 6 for WRN-16-k, 12 for WRN-28-k, 18 for WRN-40-k. Hooking a
    block itself gives a tuple, not a candidate.

    Args:
        depth (int): network depth, 6n+4 with n >= 1 (16, 28, 40 in the
            paper). Required.
        widen_factor (int): width multiplier k (2 in the paper). Required.
        drop_rate (float): dropout probability between the two convs of
            each block. Defaults to 0.0, as RepDistiller and the AFD release
            train WRNs on CIFAR-100.
        in_channels (int): channels of the input image. Defaults to 3 (RGB).
        out_indices (int | Sequence[int]): stages (0, 1, 2; negative counts
            from the end) whose activated outputs ``forward`` returns.
            Defaults to ``(2, )``: the last stage after the final BN + ReLU,
            which mmpretrain's ``GlobalAveragePooling`` neck and
            ``LinearClsHead`` expect.
        init_cfg (dict | list[dict] | None): mmengine init config, applied by
            ``init_weights()``. Defaults to Kaiming-normal convs (fan_out,
            relu) and BN weight 1 / bias 0, the init of the reference
            ``wrn.py``.
    """

    candidate_pattern = 'layer*.*.post_act'
    strides = (1, 2, 2)

    def __init__(self,
                 depth,
                 widen_factor,
                 drop_rate=0.0,
                 in_channels=3,
                 out_indices=(2, ),
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]):
        super().__init__(init_cfg)
        self._check_args(depth, widen_factor, drop_rate)
        self.depth, self.widen_factor = depth, widen_factor
        self.out_indices = check_out_indices(out_indices, len(self.strides))
        widths = [16 * widen_factor * 2**i for i in range(3)]
        self.conv1 = nn.Conv2d(
            in_channels, 16, 3, padding=1, bias=False)
        self.stem_act = bn_relu(16)
        channels = 16
        for i, (width, stride) in enumerate(zip(widths, self.strides)):
            blocks = []
            for j in range((depth - 4) // 6):
                blocks.append(PreActBlock(
                    channels, width, stride if j == 0 else 1, drop_rate))
                channels = width
            self.add_module(f'layer{i + 1}', nn.Sequential(*blocks))

    @staticmethod
    def _check_args(depth, widen_factor, drop_rate):
        if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(
                f'WideResNet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, '
                f'40, ...), got {depth!r}: change backbone.depth.')
        if not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(
                'WideResNet widen_factor must be an integer >= 1, got '
                f'{widen_factor!r}: change backbone.widen_factor.')
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(
                f'WideResNet drop_rate must be in [0, 1), got {drop_rate!r}: '
                'change backbone.drop_rate.')

    def forward(self, x):
        """Images (B, 3, H, W) -> tuple of the selected stage activations.

        Stage i gives (B, 16 * k * 2**i, H / 2**i, W / 2**i), after the BN +
        ReLU that the next convolution (or the pooling) sees.
        """
        x = self.conv1(x)
        feats = (x, self.stem_act(x))  # residual stream, its activation
        outs = []
        for i in range(len(self.strides)):
            feats = getattr(self, f'layer{i + 1}')(feats)
            if i in self.out_indices:
                outs.append(feats[1])
        return tuple(outs)
