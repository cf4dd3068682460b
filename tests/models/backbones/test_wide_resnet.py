"""Tests of afd_mm.models.backbones.wide_resnet (CIFAR WRN-d-k)."""
from fnmatch import fnmatchcase

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from afd_mm.models.backbones.wide_resnet import WideResNet

# Published sizes with a 100-class head, in millions, and exact counts.
PUBLISHED_M = {16: 0.70, 28: 1.47, 40: 2.25}
HEAD_100 = 128 * 100 + 100
EXACT_WITH_HEAD = {16: 703_284, 28: 1_479_220, 40: 2_255_156}


def match(model, pattern):
    """Module names matching ``pattern`` part by part (``*`` stops at dots)."""
    parts = pattern.split('.')
    return [
        name for name, _ in model.named_modules()
        if len(name.split('.')) == len(parts) and all(
            fnmatchcase(n, p) for n, p in zip(name.split('.'), parts))
    ]


def record(model, names):
    """Forward hooks appending each named module's output to a list."""
    feats, modules = [], dict(model.named_modules())
    for n in names:
        modules[n].register_forward_hook(lambda m, i, o: feats.append(o))
    return feats


class RefBlock(nn.Module):
    """RepDistiller's ``wrn.py`` BasicBlock, transcribed (no dropout)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.relu2 = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal = cin == cout
        self.convShortcut = None if self.equal else nn.Conv2d(
            cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        if not self.equal:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equal else x)))
        out = self.conv2(out)
        return torch.add(x if self.equal else self.convShortcut(x), out)


class RefWRN(nn.Module):
    """RepDistiller's ``WideResNet`` up to the final BN + ReLU."""

    def __init__(self, depth, k):
        super().__init__()
        n, widths = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.blocks = nn.Sequential(*[
            RefBlock(widths[i] if j == 0 else widths[i + 1], widths[i + 1],
                     (1, 2, 2)[i] if j == 0 else 1)
            for i in range(3) for j in range(n)])
        self.bn1, self.relu = nn.BatchNorm2d(64 * k), nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn1(self.blocks(self.conv1(x))))


def randomize_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()


def reference_and_copy(depth, k):
    """A randomised reference WRN and a WideResNet with its weights."""
    ref, model = RefWRN(depth, k), WideResNet(depth, k)
    randomize_bn(ref)
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3)
              for b in layer]
    model.conv1.load_state_dict(ref.conv1.state_dict())
    model.stem_act[0].load_state_dict(ref.blocks[0].bn1.state_dict())
    next_bns = [b.bn1 for b in ref.blocks[1:]] + [ref.bn1]
    for mine, theirs, next_bn in zip(blocks, ref.blocks, next_bns):
        mine.conv1.load_state_dict(theirs.conv1.state_dict())
        mine.bn1.load_state_dict(theirs.bn2.state_dict())
        mine.conv2.load_state_dict(theirs.conv2.state_dict())
        if theirs.convShortcut is not None:
            mine.shortcut.load_state_dict(theirs.convShortcut.state_dict())
        mine.post_act[0].load_state_dict(next_bn.state_dict())
    ref.eval(), model.eval()  # BaseBackbone.train returns None
    return ref, model


@pytest.mark.parametrize('depth,num', [(16, 6), (28, 12), (40, 18)])
def test_candidate_pattern_selects_post_acts(depth, num):
    names = match(WideResNet(depth, 2), WideResNet.candidate_pattern)
    assert names == [f'layer{i}.{j}.post_act'
                     for i in (1, 2, 3) for j in range(num // 3)]


def test_candidate_shapes_on_32x32():
    model = WideResNet(16, 2)
    feats = record(model, match(model, WideResNet.candidate_pattern))
    out = model(torch.randn(2, 3, 32, 32))
    assert [tuple(f.shape) for f in feats] == [
        (2, 32, 32, 32), (2, 32, 32, 32), (2, 64, 16, 16), (2, 64, 16, 16),
        (2, 128, 8, 8), (2, 128, 8, 8)]
    assert len(out) == 1 and out[0] is feats[-1]


@pytest.mark.parametrize('depth,k', [(16, 2), (10, 1), (16, 1)])
def test_same_network_as_reference_wrn(depth, k):
    ref, model = reference_and_copy(depth, k)
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in ref.parameters())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x)[0], ref(x), atol=1e-5)


def test_candidate_is_relu_of_next_blocks_first_bn():
    ref, model = reference_and_copy(16, 2)
    raw = record(ref, [f'blocks.{j}' for j in range(6)])
    feats = record(model, match(model, WideResNet.candidate_pattern))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref(x), model(x)
        next_bns = [b.bn1 for b in ref.blocks[1:]] + [ref.bn1]
        manual = [F.relu(bn(r)) for bn, r in zip(next_bns, raw)]
    assert len(feats) == len(manual) == 6
    for feat, expected in zip(feats, manual):
        assert torch.allclose(feat, expected, atol=1e-5)


def test_candidate_uses_batch_statistics_in_training():
    model = WideResNet(16, 2)
    pairs = record(model, ['layer2.1'])
    model(torch.randn(4, 3, 32, 32))
    (raw, act), bn = pairs[0], model.layer2[1].post_act[0]
    expected = F.relu(F.batch_norm(
        raw, None, None, bn.weight, bn.bias, training=True, eps=bn.eps))
    assert torch.allclose(act, expected, atol=1e-5)


@pytest.mark.parametrize('depth', [16, 28, 40])
def test_parameter_counts(depth):
    n = sum(p.numel() for p in WideResNet(depth, 2).parameters()) + HEAD_100
    assert n == EXACT_WITH_HEAD[depth]
    assert abs(n / 1e6 - PUBLISHED_M[depth]) / PUBLISHED_M[depth] < 0.01


def test_image_classifier_and_untouched_candidates():
    import afd_mm.models.backbones.wide_resnet  # noqa: F401  (registers)
    model = MMPRETRAIN_MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='afd_mm.WideResNet', depth=16, widen_factor=2,
                      drop_rate=0.3),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=100, in_channels=128)))
    names = ['backbone.' + n for n in match(
        model.backbone, WideResNet.candidate_pattern)]
    feats = record(model, names)
    clones = []
    for n in names:
        dict(model.named_modules())[n].register_forward_hook(
            lambda m, i, o: clones.append(o.detach().clone()))
    inputs = torch.randn(2, 3, 32, 32)
    samples = [DataSample().set_gt_label(i) for i in (0, 99)]
    model(inputs, samples, mode='loss')['loss'].backward()
    assert all(p.grad is not None for p in model.parameters())
    assert len(feats) == len(clones) == 6
    assert all(torch.equal(f, c) for f, c in zip(feats, clones))
    model.eval()
    with torch.no_grad():
        preds = model(inputs, samples, mode='predict')
    assert preds[1].pred_score.shape == (100, )


@pytest.mark.parametrize('kwargs,key', [
    (dict(depth=20, widen_factor=2), 'depth must be 6n+4'),
    (dict(depth=4, widen_factor=2), 'depth must be 6n+4'),
    (dict(depth=16, widen_factor=0), 'widen_factor must be an integer'),
    (dict(depth=16, widen_factor=2, drop_rate=1.0), 'drop_rate must be'),
])
def test_bad_arguments_raise(kwargs, key):
    with pytest.raises(ValueError) as err:
        WideResNet(**kwargs)
    assert key in str(err.value)
    assert 'change backbone.' in str(err.value)
