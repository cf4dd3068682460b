"""SIGKILL in the middle of an epoch, ``--resume``: bit-identical weights.

A tiny config (no data workers) with ``randomness=dict(seed=0,
deterministic=True)`` and a checkpoint every 3 iterations runs three ways
through ``tools/train.py`` in subprocesses:

* uninterrupted, to the end;
* frozen after an iteration in the middle of the last epoch (the last
  checkpoint lies in the middle of an epoch too), then killed with SIGKILL
  by this test;
* resumed with ``--resume`` in the killed run's work dir, to the end.

The final student and meta-network weights must be equal bit for bit.
Tasks (``TASKS``): classification (CIFAR-100 fixture, 4 iterations per
epoch, 2 epochs; frozen after iteration 7, resumed from ``iter_6.pth``),
with the shipped configs' loop (``train_cfg`` by epoch) and with
mmengine's ``IterBasedTrainLoop``; detection (COCO fixture, Faster R-CNN,
whose RPN and RoI samplers draw random numbers every iteration; 2
iterations per epoch, 3 epochs; frozen after iteration 5, resumed from
``iter_3.pth``), with both loops too. The freeze is
the test-only hook below, imported by the runs through the config's
``custom_imports``; it never touches RNGs or weights.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cifar_fixture import write_cifar100
from conftest import require_mmdet
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from afd_mm.utils.checkpoint import load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = osp.join(REPO, 'tests', 'data')


def _write_coco(root):
    from coco_fixture import write_coco  # its cv2 import needs mmcv
    return write_coco(root)


# task -> tiny config, fixture writer, extra config, iterations done when
# frozen (then killed), the checkpoint resumed from, the marker's text,
# the last iteration
TASKS = {
    'cifar': dict(cfg=osp.join(DATA, 'afd_tiny_cifar.py'),
                  data=write_cifar100, extra='', freeze_after=7,
                  resume_from='iter_6.pth', frozen='epoch 2, batch 3',
                  last=8, per_epoch=4,
                  iter_scheduler="dict(by_epoch=False)"),
    'coco': dict(cfg=osp.join(DATA, 'afd_tiny_coco.py'), data=_write_coco,
                 extra='train_cfg = dict(max_epochs=3)\n', freeze_after=5,
                 resume_from='iter_3.pth', frozen='epoch 3, batch 1',
                 last=6, per_epoch=2,
                 iter_scheduler="[dict(type='ConstantLR', factor=1.0, "
                 "by_epoch=False, begin=0, end=1)]"),
}

RUN_CFG = '''_base_ = {cfg!r}
custom_imports = dict(imports=['afd_mm', 'cifar_fixture', 'test_resume'])
randomness = dict(seed=0, deterministic=True)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=3))
'''
LOOPS = {
    # the shipped configs' loop: EpochBasedTrainLoop, by_epoch=True
    'epoch_loop': '',
    'iter_loop': '''
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop',
                 max_iters={last}, val_interval={per_epoch})
param_scheduler = {iter_scheduler}
log_processor = dict(by_epoch=False)
''',
}
FREEZE_CFG = '''_base_ = './run.py'
custom_hooks = [dict(type='FreezeAfterIterForTests', iters={iters},
                     marker={marker!r})]
'''


@HOOKS.register_module(force=True)
class FreezeAfterIterForTests(Hook):
    """Test only: after ``iters`` iterations (and their checkpoint), write
    ``marker`` and sleep until killed."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, iters, marker):
        self.iters = iters
        self.marker = marker

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        """Freeze once ``runner.iter + 1 == iters``."""
        done = runner.iter + 1
        if done == self.iters:
            per_epoch = len(runner.train_dataloader)
            Path(self.marker).write_text(
                f'epoch {done // per_epoch + 1}, batch {done % per_epoch}')
            time.sleep(600)


@pytest.mark.parametrize('task, loop', [
    ('cifar', 'epoch_loop'), ('cifar', 'iter_loop'), ('coco', 'epoch_loop'),
    ('coco', 'iter_loop')])
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, task,
                                                        loop):
    if task == 'coco':
        require_mmdet()
    spec = TASKS[task]
    cfg = _write_configs(tmp_path, spec, loop)
    env = _env(tmp_path, spec)
    full = _train(cfg['run'], tmp_path / 'full', env)
    killed = _train(cfg['freeze'], tmp_path / 'killed', env)
    try:
        _wait_for(tmp_path / 'frozen', killed, tmp_path / 'killed')
        pointer = (tmp_path / 'killed' / 'last_checkpoint').read_text()
        assert pointer == str(tmp_path / 'killed' / spec['resume_from'])
    finally:
        killed.send_signal(signal.SIGKILL)
        assert killed.wait() == -signal.SIGKILL
        _finish(full, tmp_path / 'full')
    assert (tmp_path / 'frozen').read_text() == spec['frozen']
    last = f"iter_{spec['last']}.pth"
    assert not (tmp_path / 'killed' / last).exists()
    _finish(_train(cfg['run'], tmp_path / 'killed', env, '--resume'),
            tmp_path / 'killed')
    _assert_bit_identical(tmp_path / 'full' / last,
                          tmp_path / 'killed' / last, spec['last'])


def _write_configs(tmp_path, spec, loop):
    (tmp_path / 'run.py').write_text(
        RUN_CFG.format(cfg=spec['cfg']) + spec['extra']
        + LOOPS[loop].format(**spec))
    (tmp_path / 'freeze.py').write_text(FREEZE_CFG.format(
        iters=spec['freeze_after'], marker=str(tmp_path / 'frozen')))
    return dict(run=str(tmp_path / 'run.py'),
                freeze=str(tmp_path / 'freeze.py'))


def _env(tmp_path, spec):
    tests = osp.join(REPO, 'tests')
    path = [osp.join(tests, 'tools'), tests, REPO]
    return dict(os.environ, OMP_NUM_THREADS='1',
                AFD_TEST_DATA=spec['data'](str(tmp_path / 'data')),
                PYTHONPATH=os.pathsep.join(path + _inherited()))


def _train(cfg, work, env, *args):
    """Start tools/train.py; its output goes to ``work``.log."""
    log = open(f'{work}.log', 'w')
    with log:
        return subprocess.Popen(
            [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg,
             '--work-dir', str(work), *args],
            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def _finish(proc, work, timeout=300):
    if proc.wait(timeout=timeout) != 0:
        raise AssertionError(_tail(work))


def _wait_for(marker, proc, work, timeout=300.0):
    end = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError(f'never froze:\n{_tail(work)}')
        time.sleep(0.05)


def _tail(work):
    return Path(f'{work}.log').read_text()[-3000:]


def _assert_bit_identical(expected_path, resumed_path, last):
    expected = load_checkpoint_file(str(expected_path), 'load_from')
    resumed = load_checkpoint_file(str(resumed_path), 'load_from')
    assert resumed['meta']['iter'] == expected['meta']['iter'] == last
    weights = expected['state_dict']
    trained = [k for k in weights
               if k.startswith(('student.', 'distill_loss.attention.'))]
    assert any(k.startswith('distill_loss.') for k in trained)
    assert sorted(resumed['state_dict']) == sorted(weights)
    differ = [k for k in weights
              if not torch.equal(weights[k], resumed['state_dict'][k])]
    assert differ == [], f'{len(differ)} tensors differ, e.g. {differ[:4]}'


def _inherited():
    """The caller's own PYTHONPATH entries, kept after ours."""
    return [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
            if p]
