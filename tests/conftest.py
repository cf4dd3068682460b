"""Shared tiny models for afd_mm's tests (CPU, seconds)."""
import importlib.util
import os

import pytest
import torch
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

torch.set_num_threads(1)


def load_tool(name):
    """``tools/<name>.py`` as a fresh module: its ``main`` runs in this
    process."""
    spec = importlib.util.spec_from_file_location(
        f'afd_{name}_tool', os.path.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 1-epoch (2-iteration) tiny AFD run of tests/data/afd_tiny_cifar.py
    through tools/train.py: (data root, checkpoint)."""
    from cifar_fixture import write_cifar100
    root = write_cifar100(str(tmp_path_factory.mktemp('cifar')),
                          num_train=8, num_test=4)
    work = str(tmp_path_factory.mktemp('afd_run'))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('AFD_TEST_DATA', root)
        load_tool('train').main([
            os.path.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py'),
            '--work-dir', work, '--no-validate', '--cfg-options',
            'train_cfg.max_epochs=1', 'log_level=WARNING'])
    return root, os.path.join(work, 'epoch_1.pth')


def tiny_classifier(depth=8, num_classes=10, backbone=None):
    """An mmpretrain ImageClassifier config with a CIFAR ResNet."""
    return dict(
        type='ImageClassifier',
        backbone=backbone or dict(type='afd_mm.CifarResNet', depth=depth),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=64, topk=(1, )))


class Chain(nn.Module):
    """conv -> block(relu) -> block(relu), named like a backbone."""

    def __init__(self, inplace_after=False):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.ReLU(inplace=inplace_after),
                                    nn.Conv2d(4, 8, 3, padding=1))

    def forward(self, x):
        return self.layer2(self.layer1(self.stem(x)))


@pytest.fixture
def chain():
    return Chain()


# ------------------------------------------------------------- detection
DET_CONFIGS = {
    'faster_rcnn': 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    'retinanet': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
}


def has_mmdet():
    """mmdet and mmcv's compiled ops import (``make install-det``)."""
    return _mmdet_error() is None


def _mmdet_error():
    try:
        import mmdet.models  # noqa: F401  (imports mmcv.ops)
        from mmcv.ops import nms  # noqa: F401
    except ImportError as err:
        return err
    return None


def require_mmdet():
    """Skip the calling test (or module) without mmdet and mmcv's compiled
    ops; under ``make test`` (``AFD_MM_REQUIRE_DET=1``) fail instead, so CI
    never skips detection silently."""
    err = _mmdet_error()
    if err is not None:
        if os.environ.get('AFD_MM_REQUIRE_DET'):
            pytest.fail(f'mmdet with mmcv ops is not installed ({err}); '
                        'run `make install-det`.', pytrace=False)
        pytest.skip(f'needs mmdet with mmcv ops (`make install-det`): {err}',
                    allow_module_level=True)


def tiny_detector(kind='faster_rcnn', base=8, num_classes=2):
    """mmdet's own R50-FPN Faster R-CNN / RetinaNet config, shrunk to a
    ResNet-18 with ``base`` stem channels (stages base..8 base) and an FPN
    of 2 base channels; no pretrained weights."""
    from mmengine.hub import get_config
    model = get_config(DET_CONFIGS[kind]).model  # a ConfigDict, as mmdet
    model['_scope_'] = 'mmdet'
    width = 2 * base
    model['backbone'].update(depth=18, base_channels=base, init_cfg=None)
    model['neck'].update(in_channels=[base * 2 ** i for i in range(4)],
                         out_channels=width)
    if kind == 'faster_rcnn':
        model['rpn_head'].update(in_channels=width, feat_channels=width)
        model['roi_head']['bbox_roi_extractor'].update(out_channels=width)
        model['roi_head']['bbox_head'].update(
            in_channels=width, fc_out_channels=2 * width,
            num_classes=num_classes)
    else:
        model['bbox_head'].update(in_channels=width, feat_channels=width,
                                  stacked_convs=1, num_classes=num_classes)
    return model
