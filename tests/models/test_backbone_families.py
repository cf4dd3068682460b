"""Candidates of every backbone family, ViT tokens as maps, and AFD across
families (teacher and student of different families) on 32x32 inputs."""
import pytest
import torch
from mmpretrain.structures import DataSample
from torch import nn

from afd_mm.models.candidates import FAMILY_PATTERNS, default_patterns
from afd_mm.models.distiller import AFDDistiller
from afd_mm.models.recorder import FeatureRecorder, tokens_to_map
from afd_mm.registry import MODELS

VIT = dict(type='VisionTransformer', arch='deit-tiny', img_size=32,
           patch_size=8)

# backbone config, number of default candidates, first and last candidate
FAMILIES = {
    'ResNet-18': (dict(type='ResNet', depth=18), 8,
                  'layer1.0', 'layer4.1'),
    'ResNetV1c': (dict(type='ResNetV1c', depth=18), 8,
                  'layer1.0', 'layer4.1'),
    'ResNetV1d': (dict(type='ResNetV1d', depth=18), 8,
                  'layer1.0', 'layer4.1'),
    'ResNet_CIFAR': (dict(type='ResNet_CIFAR', depth=18), 8,
                     'layer1.0', 'layer4.1'),
    'ResNet-50': (dict(type='ResNet', depth=50), 16,
                  'layer1.0', 'layer4.2'),
    'ResNeXt-50': (dict(type='ResNeXt', depth=50), 16,
                   'layer1.0', 'layer4.2'),
    'SEResNet-50': (dict(type='SEResNet', depth=50), 16,
                    'layer1.0', 'layer4.2'),
    'RegNetX-400MF': (dict(type='RegNet', arch='regnetx_400mf'), 22,
                      'layer1.0', 'layer4.11'),
    'MobileNetV2': (dict(type='MobileNetV2', widen_factor=0.5), 17,
                    'layer1.0', 'layer7.0'),
    'MobileNetV3-small': (dict(type='MobileNetV3', arch='small'), 11,
                          'layer1', 'layer11'),
    'MobileNetV3-large': (dict(type='MobileNetV3', arch='large'), 15,
                          'layer1', 'layer15'),
    'ShuffleNetV1': (dict(type='ShuffleNetV1', widen_factor=0.5), 16,
                     'layers.0.0', 'layers.2.3'),
    'ShuffleNetV2': (dict(type='ShuffleNetV2', widen_factor=0.5), 16,
                     'layers.0.0', 'layers.2.3'),
    'EfficientNet-B0': (dict(type='EfficientNet', arch='b0'), 16,
                        'layers.1.0', 'layers.5.4'),
    'ConvNeXt-atto': (dict(type='ConvNeXt', arch='atto'), 12,
                      'stages.0.0', 'stages.3.1'),
    'ViT': (VIT, 12, 'layers.0', 'layers.11'),
    'DeiT': (dict(VIT, type='DistilledVisionTransformer'), 12,
             'layers.0', 'layers.11'),
    'Swin': (dict(type='SwinTransformer', arch='tiny', img_size=32,
                  window_size=2, pad_small_map=True), 12,
             'stages.0.blocks.0', 'stages.3.blocks.1'),
    'SwinV2': (dict(type='SwinTransformerV2', arch='tiny', img_size=32,
                    window_size=[2, 2, 2, 2], pad_small_map=True), 12,
               'stages.0.blocks.0', 'stages.3.blocks.1'),
    'MobileOne-s0': (dict(type='MobileOne', arch='s0'), 42,
                     'stage1.0', 'stage4.1'),
    'RepVGG-A0': (dict(type='RepVGG', arch='A0'), 21,
                  'stage_1.0', 'stage_4.0'),
    'MLP-Mixer': (dict(type='MlpMixer', arch='s', img_size=32,
                       patch_size=8), 8, 'layers.0', 'layers.7'),
    'PoolFormer-s12': (dict(type='PoolFormer', arch='s12'), 12,
                       'network.0.0', 'network.6.1'),
    'RIFormer-s12': (dict(type='RIFormer', arch='s12'), 12,
                     'network.0.0', 'network.6.1'),
    'VAN-tiny': (dict(type='VAN', arch='tiny'), 13,
                 'blocks1.0', 'blocks4.1'),
    'ConvMixer': (dict(type='ConvMixer', arch='768/32'), 32,
                  'stages.0', 'stages.31'),
    'EfficientNetV2-b0': (dict(type='EfficientNetV2', arch='b0'), 21,
                          'layers.1.0', 'layers.6.7'),
    'CSPDarkNet-53': (dict(type='CSPDarkNet', depth=53), 23,
                      'stages.0.blocks.0', 'stages.4.blocks.3'),
    'HorNet-tiny': (dict(type='HorNet', arch='tiny-gf'), 25,
                    'stages.0.0', 'stages.3.1'),
    'EdgeNeXt-xxs': (dict(type='EdgeNeXt', arch='xxsmall'), 12,
                     'stages.0.0', 'stages.3.1'),
    'RepLKNet-31B': (dict(type='RepLKNet', arch='31B'), 48,
                     'stages.0.blocks.0', 'stages.3.blocks.3'),
    'CifarResNet-20': (dict(type='afd_mm.CifarResNet', depth=20), 9,
                       'layer1.0', 'layer3.2'),
    'WRN-16-2': (dict(type='afd_mm.WideResNet', depth=16, widen_factor=2),
                 6, 'layer1.0.post_act', 'layer3.1.post_act'),
}


class Classifier(nn.Module):
    """Just a ``backbone``, like the ImageClassifier the table is for."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = MODELS.build(backbone)

    def forward(self, x):
        return self.backbone(x)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_family_default_candidates(family):
    backbone, count, first, last = FAMILIES[family]
    model = Classifier(backbone).eval()
    rec = FeatureRecorder()  # patterns=None: the family default
    names = rec.attach(model)
    assert len(names) == count
    assert names[0] == f'backbone.{first}'
    assert names[-1] == f'backbone.{last}'
    with torch.no_grad(), rec.record() as feats:
        model(torch.randn(2, 3, 32, 32))
    assert len(feats) == count
    assert all(f.dim() == 4 and f.shape[0] == 2 for f in feats)


def test_subclasses_take_their_family_entry():
    model = Classifier(dict(type='SEResNeXt', depth=50))
    assert default_patterns(model) == list(FAMILY_PATTERNS['ResNet'])
    assert 'SEResNeXt' not in FAMILY_PATTERNS


def test_unknown_family_and_no_backbone_name_the_fix(chain):
    with pytest.raises(ValueError) as err:
        FeatureRecorder().attach(Classifier(dict(type='LeNet5')))
    msg = str(err.value)
    assert 'backbone LeNet5 has no default candidates' in msg
    assert 'model.student_recorder / teacher_recorder' in msg
    assert "'ResNet'" in msg and "'ConvNeXt'" in msg
    with pytest.raises(ValueError, match='the model .Chain. has no '
                       '`backbone`.*Set `patterns`'):
        FeatureRecorder().attach(chain)


def test_unknown_family_error_in_the_distiller_names_the_key():
    lenet = dict(type='ImageClassifier',
                 backbone=dict(type='LeNet5'),
                 head=dict(type='LinearClsHead', num_classes=10,
                           in_channels=120))
    with pytest.raises(ValueError, match=r'`model.student_recorder`: The '
                       r'recorder has `patterns=None`'):
        AFDDistiller(student=lenet, teacher=_classifier('ResNet-18'))


@pytest.mark.parametrize('vit_type,extra', [
    ('VisionTransformer', 1), ('DistilledVisionTransformer', 2)])
def test_vit_tokens_become_patch_maps(vit_type, extra):
    model = Classifier(dict(VIT, type=vit_type)).eval()
    rec = FeatureRecorder('backbone.layers.1')
    rec.attach(model)
    tokens = {}
    model.backbone.layers[1].register_forward_hook(
        lambda m, i, out: tokens.setdefault('out', out))
    with torch.no_grad(), rec.record() as feats:
        model(torch.randn(2, 3, 32, 32))
    out = tokens['out']  # (B, N, C): N = extra + 4 * 4 patches
    assert out.shape == (2, extra + 16, 192)
    assert feats[0].shape == (2, 192, 4, 4)
    # patch (row i, col j) is token extra + 4 * i + j
    assert torch.equal(feats[0][:, :, 1, 2], out[:, extra + 4 * 1 + 2])
    rec = FeatureRecorder('backbone.layers.1', tokens_to_grid=False)
    rec.attach(model)
    with torch.no_grad(), rec.record() as feats:
        model(torch.randn(2, 3, 32, 32))
    assert feats[0].shape == (2, extra + 16, 192)


def test_tokens_to_map_infers_leading_tokens_and_refuses_non_squares():
    tokens = torch.randn(2, 1 + 9, 4)  # (B, N, C)
    grid = tokens_to_map(tokens, None)
    assert grid.shape == (2, 4, 3, 3)
    assert torch.equal(grid.flatten(2).transpose(1, 2), tokens[:, 1:])
    assert tokens_to_map(torch.randn(2, 16, 4), 0).shape == (2, 4, 4, 4)
    with pytest.raises(ValueError) as err:
        tokens_to_map(torch.randn(2, 1 + 8, 4), 1, 'backbone.layers.0')
    msg = str(err.value)
    assert "'backbone.layers.0' outputs 9 tokens" in msg
    assert 'square grid' in msg and '`tokens_to_grid=False`' in msg


def test_a_tuple_of_one_tensor_is_recorded_as_that_tensor():
    model = Classifier(dict(type='ResNet', depth=18)).eval()
    rec = FeatureRecorder('backbone')  # the backbone returns (x, )
    rec.attach(model)
    with torch.no_grad(), rec.record() as feats:
        out = model(torch.randn(1, 3, 32, 32))
    assert isinstance(out, tuple) and torch.equal(feats[0], out[0])


# ------------------------------------------------- AFD across families
HEADS = {  # backbone key in FAMILIES -> (in_channels of the head, neck)
    'ResNet-18': (512, True), 'ResNet-50': (2048, True),
    'MobileNetV2': (1280, True), 'ConvNeXt-atto': (320, False),
    'RegNetX-400MF': (384, True), 'ShuffleNetV2': (1024, True),
    'EfficientNet-B0': (1280, True), 'MobileNetV3-small': (576, True),
    'ViT': (192, False),
}


def _classifier(name):
    backbone = FAMILIES[name][0]
    if name == 'ViT':
        backbone = dict(backbone, out_type='cls_token')
    channels, neck = HEADS[name]
    return dict(
        type='ImageClassifier', backbone=backbone,
        neck=dict(type='GlobalAveragePooling') if neck else None,
        head=dict(type='LinearClsHead', num_classes=10,
                  in_channels=channels))


@pytest.mark.parametrize('teacher,student', [
    ('ResNet-50', 'MobileNetV2'),
    ('ConvNeXt-atto', 'ResNet-18'),
    ('RegNetX-400MF', 'ShuffleNetV2'),
    ('EfficientNet-B0', 'MobileNetV3-small'),
    ('ViT', 'ResNet-18'),
    ('MobileNetV2', 'ViT'),  # token maps of the student carry gradient
])
def test_afd_across_families_forward_backward(teacher, student):
    torch.manual_seed(0)
    model = AFDDistiller(student=_classifier(student),
                         teacher=_classifier(teacher), teacher_ckpt=None)
    assert len(model.teacher_recorder.names) == FAMILIES[teacher][1]
    assert len(model.student_recorder.names) == FAMILIES[student][1]
    model.train()
    inputs = torch.randn(2, 3, 32, 32)
    samples = [_sample(label) for label in (3, 7)]
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd', 'loss_afd'}
    sum(losses.values()).backward()
    trained = list(model.student.named_parameters()) + \
        list(model.distill_loss.named_parameters())
    missing = [n for n, p in trained if p.requires_grad and p.grad is None]
    assert not missing
    assert all(not p.requires_grad and p.grad is None
               for p in model.teacher.parameters())


def _sample(label):
    return DataSample().set_gt_label(label)
