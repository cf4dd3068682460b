"""A non-finite update is never saved; the stop says what to resume.

Through ``tools/train.py`` on the tiny config with a checkpoint every
iteration: iteration 1 is saved; iteration 2's loss is finite, then the
test-only hook below makes one student weight infinite right after its
optimizer step, as an overflowing update does (a real one depends on the
gradients' size, so it is not a reliable test), and before the
checkpoint hook runs. That checkpoint must not be written.
"""
import os
import os.path as osp
import re
import sys

import pytest
import torch
from cifar_fixture import write_cifar100
from conftest import REPO
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from afd_mm.hooks import FiniteCheckpointHook
from afd_mm.utils.checkpoint import load_checkpoint_file

sys.path.insert(0, osp.join(REPO, 'tools'))
import train as train_tool  # noqa: E402

TINY = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')
POISON_CFG = f'''_base_ = {TINY!r}
custom_hooks = [dict(type='PoisonUpdateForTests', iteration=2)]
'''


@HOOKS.register_module(force=True)
class PoisonUpdateForTests(Hook):
    """Test only: after the optimizer step of ``iteration`` (1-based), one
    student weight becomes inf; before the checkpoint hook runs."""

    priority = 'NORMAL'  # after the update, before CheckpointHook

    def __init__(self, iteration):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        """Poison ``student.head.fc.weight[0, 0]`` at ``iteration``."""
        if runner.iter + 1 == self.iteration:
            runner.model.student.head.fc.weight.data[0, 0] = float('inf')


def test_poisoned_update_is_not_saved_and_names_what_to_resume(
        tmp_path, monkeypatch):
    monkeypatch.setenv('AFD_TEST_DATA', write_cifar100(str(tmp_path / 'd')))
    work = str(tmp_path / 'work')
    config = tmp_path / 'poison.py'
    config.write_text(POISON_CFG)
    with pytest.raises(FloatingPointError) as err:
        train_tool.main([
            str(config), '--work-dir', work, '--no-validate',
            '--cfg-options', 'default_hooks.checkpoint.by_epoch=False',
            'default_hooks.checkpoint.interval=1', 'log_level=WARNING'])
    message = str(err.value)
    assert message.startswith(
        'Non-finite weights at iteration 2: the first non-finite tensor is '
        'the parameter `student.head.fc.weight` (1 of 6400 values NaN/inf). '
        'Likely cause: the update itself'), message
    assert 'optim_wrapper.optimizer.lr' in message
    last = osp.join(work, 'iter_1.pth')
    assert f'Resume from {last} ' in message
    assert (f'`python tools/train.py {config} --resume {last} --cfg-options '
            'optim_wrapper.optimizer.lr=<lower value>`') in message
    assert sorted(n for n in os.listdir(work)
                  if n.endswith(('.pth', '.tmp'))) == ['iter_1.pth']
    state = load_checkpoint_file(last, 'load_from')['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


class _Runner:
    """What the hook reads of a runner."""

    def __init__(self, model, optimizer):
        self.model, self.iter = model, 6
        self.optim_wrapper = type('Wrapper', (), {'optimizer': optimizer})


def test_non_finite_optimizer_state_is_named_by_its_parameter():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    optimizer.state[model[1].weight]['momentum_buffer'][0, 0] = float('nan')
    checkpoint = dict(state_dict=model.state_dict(),
                      optimizer=optimizer.state_dict())
    with pytest.raises(FloatingPointError, match=re.escape(
            'Non-finite weights at iteration 7: the first non-finite tensor '
            'is the optimizer state `momentum_buffer of 1.weight` (1 of 2 '
            'values NaN/inf)')):
        FiniteCheckpointHook().before_save_checkpoint(
            _Runner(model, optimizer), checkpoint)
    optimizer.state[model[1].weight]['momentum_buffer'].zero_()
    FiniteCheckpointHook().before_save_checkpoint(
        _Runner(model, optimizer), dict(state_dict=model.state_dict(),
                                        optimizer=optimizer.state_dict()))
