"""tools/train.py --tensorboard: losses, metrics and link matrices in the
TensorBoard event file (the `tensorboard` extra)."""
import glob
import os.path as osp
import sys

import pytest
from cifar_fixture import write_cifar100
from conftest import REPO
from mmengine.config import Config
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)

sys.path.insert(0, osp.join(REPO, 'tools'))
import train as train_tool  # noqa: E402

TINY = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')


def test_losses_metrics_and_link_matrix_reach_tensorboard(tmp_path,
                                                          monkeypatch):
    root = write_cifar100(str(tmp_path / 'cifar100'), num_train=16,
                          num_test=8)
    monkeypatch.setenv('AFD_TEST_DATA', root)
    config = tmp_path / 'afd_links.py'
    config.write_text(f'_base_ = {TINY!r}\n'
                      "custom_hooks = [dict(type='afd_mm.LinkMatrixHook')]\n")
    work = str(tmp_path / 'work')
    train_tool.main([str(config), '--work-dir', work, '--tensorboard',
                     '--cfg-options', 'train_cfg.max_epochs=1'])
    events = glob.glob(osp.join(work, '*', 'vis_data',
                                'events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0], size_guidance={'images': 0})
    acc.Reload()
    scalars = acc.Tags()['scalars']
    for tag in ('loss', 'loss_cls', 'loss_afd', 'loss_kd', 'lr',
                'accuracy/top1'):
        assert tag in scalars, (tag, scalars)
    assert [e.step for e in acc.Scalars('loss')] == [1, 2, 3, 4]
    images = acc.Images('link_matrix')
    assert [im.step for im in images] == [1]
    assert images[0].width > 100 and images[0].height > 100


def test_tensorboard_without_the_package_says_which_extra(monkeypatch):
    cfg = Config(dict(visualizer=dict(type='UniversalVisualizer',
                                      vis_backends=[])))
    train_tool.use_tensorboard(cfg, True)
    assert cfg.visualizer.vis_backends == [
        dict(type='TensorboardVisBackend')]
    monkeypatch.setattr(train_tool.importlib.util, 'find_spec',
                        lambda name: None)
    with pytest.raises(ImportError, match=r"afd_mm\[tensorboard\]"):
        train_tool.use_tensorboard(cfg, False)  # a config's own backend
    plain = Config(dict(visualizer=dict(type='UniversalVisualizer')))
    train_tool.use_tensorboard(plain, False)  # nothing asked: no error
