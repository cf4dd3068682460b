"""Tests of afd_mm.models.backbones.cifar_resnet (CIFAR ResNet-6n+2)."""
from fnmatch import fnmatchcase

import pytest
import torch
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.structures import DataSample

from afd_mm.models.backbones.cifar_resnet import CifarResNet

# Published sizes (He et al. 2016, Table 6; AFD paper) in millions.
PUBLISHED_M = {20: 0.27, 56: 0.86, 110: 1.73}
# Exact counts of this (RepDistiller) layout: convs + BNs, and with a
# 100-class linear head (64 * 100 + 100 = 6,500 more).
BACKBONE_PARAMS = {20: 271_824, 56: 855_120, 110: 1_730_064}


def match(model, pattern):
    """Module names matching ``pattern`` part by part (``*`` stops at dots)."""
    parts = pattern.split('.')
    return [
        name for name, _ in model.named_modules()
        if len(name.split('.')) == len(parts) and all(
            fnmatchcase(n, p) for n, p in zip(name.split('.'), parts))
    ]


def record(model, names):
    """Forward hooks appending ``(name, output)`` to the returned list."""
    feats, modules = [], dict(model.named_modules())
    handles = [
        modules[n].register_forward_hook(
            lambda m, i, o, n=n: feats.append((n, o))) for n in names
    ]
    return feats, handles


def build_classifier(depth=20):
    import afd_mm.models.backbones.cifar_resnet  # noqa: F401  (registers)
    return MMPRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='afd_mm.CifarResNet', depth=depth),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='LinearClsHead', num_classes=100, in_channels=64)))


@pytest.mark.parametrize('depth,num_blocks', [(20, 9), (56, 27), (110, 54)])
def test_candidate_pattern_selects_every_block(depth, num_blocks):
    model = CifarResNet(depth)
    names = match(model, CifarResNet.candidate_pattern)
    n = num_blocks // 3
    assert names == [
        f'layer{i}.{j}' for i in (1, 2, 3) for j in range(n)]


def test_resnet110_every_second_block_gives_27():
    names = match(CifarResNet(110), CifarResNet.candidate_pattern)[1::2]
    assert len(names) == 27
    assert names[:2] == ['layer1.1', 'layer1.3']
    assert names[-1] == 'layer3.17'


def test_candidate_shapes_on_32x32():
    model = CifarResNet(20)
    feats, _ = record(model, match(model, CifarResNet.candidate_pattern))
    out = model(torch.randn(2, 3, 32, 32))
    expected = [(2, 16, 32, 32)] * 3 + [(2, 32, 16, 16)] * 3 + [
        (2, 64, 8, 8)] * 3
    assert [tuple(f.shape) for _, f in feats] == expected
    assert len(out) == 1 and out[0] is feats[-1][1]
    assert all((f >= 0).all() for _, f in feats)  # after the final ReLU


def test_out_indices_select_stages():
    model = CifarResNet(20, out_indices=(0, -2, 2))
    outs = model(torch.randn(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [
        (1, 16, 32, 32), (1, 32, 16, 16), (1, 64, 8, 8)]
    with pytest.raises(ValueError, match=r'change backbone.out_indices'):
        CifarResNet(20, out_indices=(3, ))


@pytest.mark.parametrize('depth', [20, 56, 110])
def test_parameter_counts(depth):
    model = CifarResNet(depth)
    n = sum(p.numel() for p in model.parameters())
    assert n == BACKBONE_PARAMS[depth]
    # The published sizes round the backbone (CIFAR-10 heads are 650
    # parameters); with a 100-class head ResNet-20 is 278,324 = 0.28M.
    assert abs(n / 1e6 - PUBLISHED_M[depth]) / PUBLISHED_M[depth] < 0.01


def test_downsample_shortcut_is_conv1x1_bn():
    model = CifarResNet(20)
    assert model.layer1[0].downsample is None
    conv, bn = model.layer2[0].downsample
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    assert isinstance(bn, torch.nn.BatchNorm2d)


def test_image_classifier_loss_and_predict():
    model = build_classifier()
    model.init_weights()
    n = sum(p.numel() for p in model.parameters())
    assert n == BACKBONE_PARAMS[20] + 6_500
    inputs = torch.randn(2, 3, 32, 32)
    samples = [DataSample().set_gt_label(i) for i in (3, 97)]
    losses = model(inputs, samples, mode='loss')
    assert torch.isfinite(losses['loss'])
    losses['loss'].backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        preds = model(inputs, samples, mode='predict')
    assert len(preds) == 2
    assert preds[0].pred_score.shape == (100, )


def test_recorded_candidates_survive_forward_and_backward():
    model = build_classifier()
    names = ['backbone.' + n for n in match(
        model.backbone, CifarResNet.candidate_pattern)]
    feats, _ = record(model, names)
    clones = []
    for module in (dict(model.named_modules())[n] for n in names):
        module.register_forward_hook(
            lambda m, i, o: clones.append(o.detach().clone()))
    samples = [DataSample().set_gt_label(i) for i in (1, 2)]
    model(torch.randn(2, 3, 32, 32), samples, mode='loss')['loss'].backward()
    assert len(feats) == len(clones) == 9
    for (name, feat), clone in zip(feats, clones):
        assert torch.equal(feat, clone), name


@pytest.mark.parametrize('depth', [18, 21, 6, 0, '20'])
def test_bad_depth_raises(depth):
    with pytest.raises(ValueError) as err:
        CifarResNet(depth)
    msg = str(err.value)
    assert 'must be 6n+2' in msg and '20, 32' in msg
    assert repr(depth) in msg and 'change backbone.depth' in msg
