"""A tiny AFD run (CIFAR ResNet-14 -> ResNet-8) on the CIFAR fixture.

Shared by the hook and tools tests: ``tiny_afd_config`` gives a complete
mmengine config, ``train_tiny_afd`` trains it with a Runner (a second or
two on CPU).
"""
import os.path as osp
import uuid

from cifar_fixture import write_cifar100
from conftest import tiny_classifier
from mmengine.config import Config
from mmengine.runner import Runner

import afd_mm  # noqa: F401  (registers afd_mm's models)

AFD_LOSS = dict(type='afd_mm.AFDLoss', loss_weight=1.0)
MEAN, STD = [129.304, 124.070, 112.434], [68.170, 65.392, 70.418]


def _loader(root, split, batch_size=4):
    return dict(
        batch_size=batch_size, num_workers=0,
        dataset=dict(type='CIFAR100Fixture', data_root=root, split=split,
                     pipeline=[dict(type='PackInputs')]),
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'))


def tiny_afd_config(tmp_path, max_epochs=2, custom_hooks=(),
                    distill_loss=AFD_LOSS):
    """An AFD config on an 8-image CIFAR-100 fixture, batch 4."""
    root = write_cifar100(str(tmp_path / 'data'), num_train=8, num_test=4)
    model = dict(
        type='afd_mm.AFDDistiller',
        student=tiny_classifier(depth=8, num_classes=100),
        teacher=tiny_classifier(depth=14, num_classes=100),
        distill_loss=distill_loss)
    return Config(dict(
        model=model,
        data_preprocessor=dict(num_classes=100, mean=MEAN, std=STD,
                               to_rgb=False),
        work_dir=str(tmp_path / 'work'),
        experiment_name=f'tiny_afd_{uuid.uuid4().hex}',
        train_dataloader=_loader(root, 'train'),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01,
                                          momentum=0.9)),
        test_pipeline=[dict(type='PackInputs')],
        test_dataloader=_loader(root, 'test'),
        test_evaluator=dict(type='Accuracy', topk=(1, )),
        test_cfg=dict(),
        default_scope='mmpretrain',
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_hooks=list(custom_hooks),
        visualizer=dict(type='UniversalVisualizer',
                        vis_backends=[dict(type='LocalVisBackend')]),
        log_level='WARNING'))


def train_tiny_afd(tmp_path, **kwargs):
    """Train ``tiny_afd_config``; returns (runner, last checkpoint path)."""
    runner = Runner.from_cfg(tiny_afd_config(tmp_path, **kwargs))
    runner.train()
    epochs = runner.max_epochs
    return runner, osp.join(runner.work_dir, f'epoch_{epochs}.pth')
