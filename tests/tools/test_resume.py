"""SIGKILL in the middle of an epoch, ``--resume``: bit-identical weights.

The tiny config (4 iterations per epoch, 2 epochs, no data workers) with
``randomness=dict(seed=0, deterministic=True)`` and a checkpoint every 3
iterations runs three ways through ``tools/train.py`` in subprocesses:

* uninterrupted, to the end (iteration 8);
* frozen after iteration 7 (3 of 4 batches into epoch 2, the last
  checkpoint ``iter_6.pth`` half-way through that epoch), then killed
  with SIGKILL by this test;
* resumed with ``--resume`` in the killed run's work dir, to the end.

The final student and meta-network weights must be equal bit for bit,
with the shipped configs' loop (``train_cfg`` by epoch) and with
mmengine's ``IterBasedTrainLoop``. The freeze is the test-only hook below,
imported by the runs through the config's ``custom_imports``; it never
touches RNGs or weights.
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
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from afd_mm.utils.checkpoint import load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CFG = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')
FREEZE_AFTER = 7  # iterations done when the run is frozen, then killed

RUN_CFG = f'''_base_ = {TINY_CFG!r}
custom_imports = dict(imports=['afd_mm', 'cifar_fixture', 'test_resume'])
randomness = dict(seed=0, deterministic=True)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=3))
'''
LOOPS = {
    # the shipped configs' loop: EpochBasedTrainLoop, by_epoch=True
    'epoch_loop': '',
    'iter_loop': '''
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=8,
                 val_interval=4)
param_scheduler = dict(by_epoch=False)
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


@pytest.mark.parametrize('loop', sorted(LOOPS))
def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, loop):
    cfg = _write_configs(tmp_path, loop)
    env = _env(tmp_path)
    full = _train(cfg['run'], tmp_path / 'full', env)
    killed = _train(cfg['freeze'], tmp_path / 'killed', env)
    try:
        _wait_for(tmp_path / 'frozen', killed, tmp_path / 'killed')
        pointer = (tmp_path / 'killed' / 'last_checkpoint').read_text()
        assert pointer == str(tmp_path / 'killed' / 'iter_6.pth')
    finally:
        killed.send_signal(signal.SIGKILL)
        assert killed.wait() == -signal.SIGKILL
        _finish(full, tmp_path / 'full')
    assert (tmp_path / 'frozen').read_text() == 'epoch 2, batch 3'
    assert not (tmp_path / 'killed' / 'iter_8.pth').exists()
    _finish(_train(cfg['run'], tmp_path / 'killed', env, '--resume'),
            tmp_path / 'killed')
    _assert_bit_identical(tmp_path / 'full' / 'iter_8.pth',
                          tmp_path / 'killed' / 'iter_8.pth')


def _write_configs(tmp_path, loop):
    (tmp_path / 'run.py').write_text(RUN_CFG + LOOPS[loop])
    (tmp_path / 'freeze.py').write_text(FREEZE_CFG.format(
        iters=FREEZE_AFTER, marker=str(tmp_path / 'frozen')))
    return dict(run=str(tmp_path / 'run.py'),
                freeze=str(tmp_path / 'freeze.py'))


def _env(tmp_path):
    tests = osp.join(REPO, 'tests')
    path = [osp.join(tests, 'tools'), tests, REPO]
    return dict(os.environ, OMP_NUM_THREADS='1',
                AFD_TEST_DATA=write_cifar100(str(tmp_path / 'data')),
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


def _assert_bit_identical(expected_path, resumed_path):
    expected = load_checkpoint_file(str(expected_path), 'load_from')
    resumed = load_checkpoint_file(str(resumed_path), 'load_from')
    assert resumed['meta']['iter'] == expected['meta']['iter'] == 8
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
