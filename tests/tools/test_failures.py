"""Clear failures: each mistake a user can make names the key to change.

The non-finite loss is provoked for real through ``tools/train.py``; the
teacher/student mismatches are built from the tiny test config
(tests/data/afd_tiny_cifar.py) the way the Runner builds them.
"""
import copy
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from cifar_fixture import write_cifar100
from mmengine.config import Config
from mmpretrain.structures import DataSample

from afd_mm.registry import MODELS
from afd_mm.utils.atomic_io import find_resumable_checkpoint
from afd_mm.utils.checkpoint import load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CFG = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')


@pytest.fixture(scope='module')
def model_cfg():
    """The tiny config's AFDDistiller: ResNet-14 -> ResNet-8, no ckpt."""
    return Config.fromfile(TINY_CFG).model.to_dict()


def _with(cfg, **changes):
    cfg = copy.deepcopy(cfg)
    cfg.update(changes)
    return cfg


def _batch(size=32, num=2):
    samples = [DataSample().set_gt_label(i) for i in range(num)]
    return torch.rand(num, 3, size, size), samples


def test_non_finite_loss_stops_and_keeps_last_checkpoint(tmp_path):
    """lr 1e30: iteration 1 is finite and saved, iteration 2 is NaN.

    Iterations are counted from 1, as in mmengine's log (``[1][2/8]``) and
    checkpoint names (``iter_1.pth`` holds 1 iteration).
    """
    work = tmp_path / 'work'
    run = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), TINY_CFG,
         '--work-dir', str(work), '--cfg-options',
         'optim_wrapper.optimizer.lr=1e30',
         'default_hooks.checkpoint.by_epoch=False',
         'default_hooks.checkpoint.interval=1'],
        env=_env(tmp_path), cwd=REPO, capture_output=True, text=True)
    assert run.returncode != 0
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith('FloatingPointError: Non-finite loss at '
                            'iteration 2:'), run.stderr[-3000:]
    assert "'loss_cls'" in error  # the term(s), with their values
    assert '`loss_weight` of distill_loss' in error
    assert 'optim_wrapper.optimizer.lr' in error
    assert 'Likely cause: the update itself' in error
    assert f'--resume {work / "iter_1.pth"} --cfg-options ' in error
    files = os.listdir(work)
    assert [n for n in files if n.endswith(('.pth', '.tmp'))] == [
        'iter_1.pth']
    last = find_resumable_checkpoint(str(work))
    assert last == str(work / 'iter_1.pth')
    state = load_checkpoint_file(last, 'load_from')['state_dict']
    assert all(torch.isfinite(v).all() for v in state.values()
               if v.is_floating_point())


def _env(tmp_path):
    return dict(os.environ, OMP_NUM_THREADS='1',
                AFD_TEST_DATA=write_cifar100(str(tmp_path / 'data')),
                PYTHONPATH=os.pathsep.join(
                    [osp.join(REPO, 'tests'), REPO] + _inherited()))


def test_overflowing_afd_term_is_named(model_cfg):
    loss = dict(model_cfg['distill_loss'], loss_weight=1e40)
    model = MODELS.build(_with(model_cfg, distill_loss=loss))
    with pytest.raises(FloatingPointError) as err:
        model.loss(*_batch())
    message = str(err.value)
    assert re.search(r"\['loss_afd'\] \(values \{'loss_afd': inf", message)
    assert 'beta' in message and 'optim_wrapper.optimizer.lr' in message


@pytest.mark.parametrize('cause, expected', [
    ('input', 'Likely cause: the input batch, which holds NaN/inf: check '
     'the dataset and its pipeline (`train_dataloader.dataset`).'),
    ('teacher', 'Likely cause: the teacher output, which holds NaN/inf on a '
     'finite batch: check the teacher weights (`teacher_ckpt`)'),
    ('student', 'Likely cause: the update itself: the previous optimizer '
     'step made `student.backbone.conv1.weight` non-finite; lower the '
     'learning rate (optim_wrapper.optimizer.lr).'),
])
def test_non_finite_loss_names_its_likely_cause(model_cfg, cause, expected):
    model = MODELS.build(model_cfg)
    inputs, samples = _batch()
    if cause == 'input':
        inputs[1, 0, 3, 3] = float('nan')
    elif cause == 'teacher':
        model.teacher.head.fc.bias.data[0] = float('nan')
    else:
        model.student.backbone.conv1.weight.data[0] = float('inf')
    with pytest.raises(FloatingPointError) as err:
        model.loss(inputs, samples)
    assert expected in str(err.value)
    assert 'every checkpoint written holds finite values' in str(err.value)


@pytest.mark.parametrize('side', ['student', 'teacher'])
def test_pattern_matching_nothing_names_the_recorder(model_cfg, side):
    recorder = dict(type='afd_mm.FeatureRecorder', patterns='backbone.st*')
    with pytest.raises(ValueError) as err:
        MODELS.build(_with(model_cfg, **{f'{side}_recorder': recorder}))
    assert f'`model.{side}_recorder`' in str(err.value)
    assert 'backbone.st*' in str(err.value)


def test_zero_candidates_names_the_recorder(model_cfg):
    recorder = dict(type='afd_mm.FeatureRecorder',
                    patterns='backbone.layer*.*', indices=[])
    with pytest.raises(ValueError) as err:
        MODELS.build(_with(model_cfg, student_recorder=recorder))
    message = str(err.value)
    assert '`model.student_recorder`' in message
    assert 'zero candidates' in message and '`indices`' in message


def test_teacher_ckpt_of_another_architecture(model_cfg, tmp_path):
    other = copy.deepcopy(model_cfg['student'])  # ResNet-8, not -14
    path = str(tmp_path / 'resnet8.pth')
    torch.save({'state_dict': MODELS.build(other).state_dict()}, path)
    with pytest.raises(ValueError) as err:
        MODELS.build(_with(model_cfg, teacher_ckpt=path))
    message = str(err.value)
    assert 'does not fit the teacher model' in message
    assert '`teacher_ckpt`' in message and '`teacher`' in message
    assert "missing keys ['backbone.layer1.1.bn1.bias'" in message
    assert '(36 in all)' in message


def test_probe_size_mismatch_names_probe_size(model_cfg):
    model = MODELS.build(_with(model_cfg, probe_size=(16, 16)))
    with pytest.raises(ValueError) as err:
        model.loss(*_batch(size=32))
    message = str(err.value)
    assert 'Training inputs are (32, 32)' in message
    assert '`model.probe_size=(32, 32)`' in message


def _inherited():
    """The caller's own PYTHONPATH entries, kept after ours."""
    return [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
            if p]
