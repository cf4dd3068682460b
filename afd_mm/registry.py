"""afd_mm's registries: children of mmpretrain's, with scope ``afd_mm``.

A child registry looks a name up locally first and then in its parent, so
inside afd_mm components ``type='ResNet'`` or ``type='CIFAR100'`` still
resolve to mmpretrain, while afd_mm's own classes are written
``type='afd_mm.ClassName'`` (``default_scope`` stays ``'mmpretrain'``).
"""
from mmengine.registry import Registry
from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import LOOPS as MMPRETRAIN_LOOPS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.registry import (
    OPTIM_WRAPPER_CONSTRUCTORS as MMPRETRAIN_CONSTRUCTORS,
)
from mmpretrain.registry import RUNNERS as MMPRETRAIN_RUNNERS
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS

__all__ = ['MODELS', 'DATASETS', 'HOOKS', 'LOOPS', 'RUNNERS', 'TRANSFORMS',
           'OPTIM_WRAPPER_CONSTRUCTORS']

MODELS = Registry(
    'model', parent=MMPRETRAIN_MODELS, scope='afd_mm',
    locations=['afd_mm.models'])
DATASETS = Registry(
    'dataset', parent=MMPRETRAIN_DATASETS, scope='afd_mm',
    locations=['afd_mm.datasets'])
HOOKS = Registry(
    'hook', parent=MMPRETRAIN_HOOKS, scope='afd_mm',
    locations=['afd_mm.hooks'])
TRANSFORMS = Registry(
    'transform', parent=MMPRETRAIN_TRANSFORMS, scope='afd_mm',
    locations=['afd_mm.datasets'])
LOOPS = Registry(
    'loop', parent=MMPRETRAIN_LOOPS, scope='afd_mm',
    locations=['afd_mm.engine'])
RUNNERS = Registry(
    'runner', parent=MMPRETRAIN_RUNNERS, scope='afd_mm',
    locations=['afd_mm.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMPRETRAIN_CONSTRUCTORS, scope='afd_mm',
    locations=['afd_mm.engine'])
