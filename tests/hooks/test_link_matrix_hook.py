"""LinkMatrixHook in a real Runner, and its averaging on a stand-in."""
import glob
import json
import os.path as osp
from types import SimpleNamespace
from unittest import mock

import mmcv
import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from tiny_afd import train_tiny_afd
from torch import nn

from afd_mm.hooks.link_matrix_hook import LinkMatrixHook
from afd_mm.registry import HOOKS
from afd_mm.visualization.link_matrix import draw_link_matrix, draw_link_strip

SPIED = []


@HOOKS.register_module(force=True)
class AlphaSpy(Hook):
    """Records every iteration's ``last_alpha`` (test only)."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        alpha = runner.model.distill_loss.last_alpha
        SPIED.append((runner.epoch + 1, alpha.clone()))


def _read_rgb(path):
    return mmcv.imread(path, channel_order='rgb')


def test_runner_writes_npy_images_names_and_strip(tmp_path):
    SPIED.clear()
    runner, _ = train_tiny_afd(
        tmp_path, max_epochs=2,
        custom_hooks=[dict(type='afd_mm.LinkMatrixHook'),
                      dict(type='afd_mm.AlphaSpy')])
    t_names = runner.model.teacher_recorder.names
    s_names = runner.model.student_recorder.names
    links = osp.join(runner.work_dir, 'links')
    with open(osp.join(links, 'names.json')) as f:
        assert json.load(f) == {'teacher': t_names, 'student': s_names}
    alphas = {}
    for epoch in (1, 2):
        alpha = np.load(osp.join(links, f'epoch_{epoch}.npy'))
        assert alpha.shape == (len(t_names), len(s_names)) == (6, 3)
        assert alpha.dtype == np.float32
        np.testing.assert_allclose(alpha.sum(axis=1), 1.0, atol=1e-5)
        spied = [a for e, a in SPIED if e == epoch]
        assert len(spied) == 2  # 8 images, batch 4: an epoch's mean only
        np.testing.assert_allclose(alpha, torch.stack(spied).mean(0),
                                   atol=1e-6)
        alphas[epoch] = alpha
        vis = glob.glob(osp.join(runner.work_dir, '*', 'vis_data',
                                 'vis_image', f'link_matrix_{epoch}.png'))
        assert len(vis) == 1
        expected = draw_link_matrix(alpha, t_names, s_names, f'epoch {epoch}')
        np.testing.assert_array_equal(_read_rgb(vis[0]), expected)
    assert not np.allclose(alphas[1], alphas[2])  # alpha is trained
    strip = _read_rgb(osp.join(links, 'links_strip.png'))
    np.testing.assert_array_equal(
        strip, draw_link_strip(alphas, t_names, s_names))


def test_interval_keeps_the_last_epoch(tmp_path):
    runner, _ = train_tiny_afd(
        tmp_path, max_epochs=3,
        custom_hooks=[dict(type='afd_mm.LinkMatrixHook', interval=2)])
    files = sorted(osp.basename(p) for p in glob.glob(
        osp.join(runner.work_dir, 'links', 'epoch_*.npy')))
    assert files == ['epoch_2.npy', 'epoch_3.npy']


def test_loss_without_last_alpha_saves_nothing(tmp_path):
    runner, _ = train_tiny_afd(
        tmp_path, max_epochs=1,
        distill_loss=None,
        custom_hooks=[dict(type='afd_mm.LinkMatrixHook')])
    assert runner.model.distill_loss is None
    assert not osp.exists(osp.join(runner.work_dir, 'links'))


# ------------------------------------------------- stand-in distiller
class _Loss(nn.Module):
    last_alpha = None


class _Distiller(nn.Module):
    def __init__(self):
        super().__init__()
        self.distill_loss = _Loss()
        self.teacher_recorder = SimpleNamespace(names=['t.a', 't.b', 't.c'])
        self.student_recorder = SimpleNamespace(names=['s.a', 's.b'])


def _runner(tmp_path, rank=0, epoch=0, wrap=False):
    model = _Distiller()
    return SimpleNamespace(
        model=nn.DataParallel(model) if wrap else model,
        work_dir=str(tmp_path), rank=rank, epoch=epoch, max_epochs=1,
        visualizer=mock.Mock()), model


def _run_epoch(hook, runner, model, batches):
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    for i, (alpha, size) in enumerate(batches):
        model.distill_loss.last_alpha = alpha
        hook.after_train_iter(runner, i, dict(data_samples=[None] * size))
    hook.after_train_epoch(runner)


def test_mean_is_over_samples_through_a_ddp_wrapper(tmp_path):
    runner, model = _runner(tmp_path, wrap=True)
    first, second = torch.rand(3, 2), torch.rand(3, 2)
    _run_epoch(LinkMatrixHook(), runner, model, [(first, 4), (second, 1)])
    saved = np.load(osp.join(tmp_path, 'links', 'epoch_1.npy'))
    np.testing.assert_allclose(saved, (4 * first + second) / 5, atol=1e-6)
    name, image = runner.visualizer.add_image.call_args[0]
    assert name == 'link_matrix'
    assert runner.visualizer.add_image.call_args[1] == {'step': 1}
    np.testing.assert_array_equal(
        image, draw_link_matrix(saved, ['t.a', 't.b', 't.c'],
                                ['s.a', 's.b'], 'epoch 1'))


def test_other_ranks_only_accumulate(tmp_path):
    runner, model = _runner(tmp_path, rank=1)
    hook = LinkMatrixHook()
    _run_epoch(hook, runner, model, [(torch.rand(3, 2), 2)])
    hook.after_train(runner)
    assert hook._count == 2
    assert not osp.exists(osp.join(tmp_path, 'links'))
    runner.visualizer.add_image.assert_not_called()


def test_bad_interval_names_the_key():
    with pytest.raises(ValueError, match='`interval` of LinkMatrixHook'):
        LinkMatrixHook(interval=0)


def test_baseline_loss_gets_one_log_line(tmp_path):
    runner, model = _runner(tmp_path)
    model.distill_loss = nn.Identity()  # a loss with no last_alpha
    hook = LinkMatrixHook()
    with mock.patch('afd_mm.hooks.link_matrix_hook.print_log') as log:
        _run_epoch(hook, runner, model, [(torch.rand(3, 2), 2)])
        hook.after_train(runner)
    assert log.call_count == 1
    assert 'has no distill_loss with `last_alpha`' in log.call_args[0][0]
    assert not osp.exists(osp.join(tmp_path, 'links'))


def test_strip_skips_another_runs_leftovers(tmp_path):
    runner, model = _runner(tmp_path)
    (tmp_path / 'links').mkdir()
    np.save(tmp_path / 'links' / 'epoch_9.npy', np.full((4, 4), 0.25))
    hook = LinkMatrixHook()
    _run_epoch(hook, runner, model, [(torch.rand(3, 2), 2)])
    hook.after_train(runner)
    saved = np.load(tmp_path / 'links' / 'epoch_1.npy')
    np.testing.assert_array_equal(
        _read_rgb(str(tmp_path / 'links' / 'links_strip.png')),
        draw_link_strip({1: saved}, ['t.a', 't.b', 't.c'], ['s.a', 's.b']))
