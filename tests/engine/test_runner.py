"""AFDRunner: the configured learning rate takes effect on resume."""
import os.path as osp
import sys

import pytest
from cifar_fixture import write_cifar100
from conftest import REPO

from afd_mm.engine import AFDRunner
from afd_mm.utils.checkpoint import load_checkpoint_file

sys.path.insert(0, osp.join(REPO, 'tools'))
import train as train_tool  # noqa: E402

TINY = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')


def _lrs(groups, key='lr'):
    return [group[key] for group in groups]


@pytest.mark.parametrize('lr', [0.005, 0.05])
def test_configured_lr_replaces_the_stored_one_on_resume(tmp_path,
                                                         monkeypatch, lr):
    monkeypatch.setenv('AFD_TEST_DATA', write_cifar100(str(tmp_path / 'd')))
    work = str(tmp_path / 'work')
    args = [TINY, '--work-dir', work, '--no-validate', '--cfg-options',
            'log_level=WARNING']
    first = train_tool.main(args + ['train_cfg.max_epochs=1'])
    assert isinstance(first, AFDRunner)
    stored = load_checkpoint_file(osp.join(work, 'epoch_1.pth'))
    stored_lrs = _lrs(stored['optimizer']['param_groups'])
    assert all(value == pytest.approx(0.05) for value in stored_lrs)
    resumed = train_tool.main(args + [
        'train_cfg.max_epochs=2', f'optim_wrapper.optimizer.lr={lr}',
        '--resume'])
    assert resumed.iter == 8  # 4 iterations per epoch: resumed at 4
    groups = resumed.optim_wrapper.optimizer.param_groups
    expected = [value * lr / 0.05 for value in stored_lrs]
    assert _lrs(groups) == pytest.approx(expected)
    assert _lrs(groups, 'initial_lr') == pytest.approx(expected)
    assert resumed.param_schedulers[0].base_values == pytest.approx(expected)
    saved = load_checkpoint_file(osp.join(work, 'epoch_2.pth'))
    assert _lrs(saved['optimizer']['param_groups']) == pytest.approx(expected)
