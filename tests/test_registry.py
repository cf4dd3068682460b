"""afd_mm's registries are children of mmpretrain's (scope 'afd_mm')."""
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS

import afd_mm  # noqa: F401  (registers)
from afd_mm.registry import DATASETS, HOOKS, MODELS


def test_registries_are_children_of_mmpretrain():
    assert MODELS.parent is MMPRETRAIN_MODELS
    assert DATASETS.parent is MMPRETRAIN_DATASETS
    assert MODELS.scope == DATASETS.scope == HOOKS.scope == 'afd_mm'


def test_mmpretrain_names_resolve_inside_afd_mm_scope():
    with DefaultScope.overwrite_default_scope('afd_mm'):
        pre = MODELS.build(dict(type='ClsDataPreprocessor', mean=[0] * 3,
                                std=[1] * 3))
        assert type(pre).__name__ == 'ClsDataPreprocessor'
        assert MODELS.get('ResNet').__module__.startswith('mmpretrain')
        assert DATASETS.get('CIFAR100').__module__.startswith('mmpretrain')


def test_afd_mm_names_resolve_from_mmpretrain_scope():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        cls = MMPRETRAIN_MODELS.get('afd_mm.AFDDistiller')
        assert cls.__name__ == 'AFDDistiller'
        backbone = MMPRETRAIN_MODELS.build(
            dict(type='afd_mm.CifarResNet', depth=8))
        out = backbone(torch.zeros(1, 3, 32, 32))
        assert out[-1].shape == (1, 64, 8, 8)
        assert MMPRETRAIN_DATASETS.get('afd_mm.TinyImageNet') is \
            DATASETS.get('TinyImageNet')
