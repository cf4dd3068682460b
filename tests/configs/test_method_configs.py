"""Every baseline and ablation config: builds, differs from its AFD config
only in the loss block, and (one per loss type) trains 2 iterations."""
import copy
import functools
import glob
import os.path as osp

import numpy as np
import pytest
from cifar_fixture import write_cifar100
from conftest import REPO, load_tool
from mmengine.config import Config

import afd_mm  # noqa: F401  (registers)
import afd_mm.models.losses.l2t_loss  # noqa: F401  (registers, until wired)
from afd_mm.registry import MODELS

PAIRS = ('r56_r20', 'r110_r20', 'r110_r56', 'wrn40-2_wrn16-2',
         'wrn40-2_wrn40-2', 'wrn40-2_r56', 'r34_wrn28-2')
METHODS = {'kd': None, 'fitnet': 'FitNetLoss', 'at': 'ATLoss',
           'rkd': 'RKDLoss', 'crd': 'CRDLoss', 'l2t': 'L2TLoss'}
LOSS_BLOCK = {'distill_loss', 'student_recorder', 'teacher_recorder',
              'kd_weight'}
BASELINES = sorted(p for m in METHODS
                   for p in glob.glob(osp.join(REPO, 'configs', m, '*.py')))
ABLATIONS = sorted(glob.glob(osp.join(REPO, 'configs/ablations/*.py')))
TINY = osp.join(REPO, 'tests/data/afd_tiny_cifar.py')


@functools.lru_cache(maxsize=None)
def _load(path):
    return Config.fromfile(path)


def load(path):
    """Config.fromfile, parsed once per file (it takes about a second)."""
    return copy.deepcopy(_load(path))


def name_of(path):
    return osp.basename(path)[:-len('_cifar100.py')]


def afd_config_of(path):
    """The Table 1 AFD config of the pair a baseline/ablation file is for."""
    name = name_of(path)
    pairs = [p for p in PAIRS if name.split('_', 1)[1].startswith(p)]
    assert len(pairs) == 1, name
    return osp.join(REPO, f'configs/afd_{pairs[0]}_cifar100.py')


def build(path, tmp_path):
    cfg = load(path)
    cfg.model.teacher_ckpt = None
    loss = cfg.model.distill_loss
    if loss is not None and loss.get('links') == 'fixed':
        probe = Config(dict(cfg.model, distill_loss=dict(
            type='afd_mm.AFDLoss', links='ordered')))
        num_t, num_s = MODELS.build(probe).distill_loss.attention.links.shape
        links = np.random.RandomState(0).rand(num_t, num_s) + 0.1
        loss.links_file = str(tmp_path / 'links.npy')
        np.save(loss.links_file, links)
    return MODELS.build(cfg.model)


def test_every_pair_has_every_method():
    names = {name_of(p) for p in BASELINES}
    expected = {f'{m}_{p}' for m in METHODS for p in PAIRS}
    assert names == expected


@pytest.mark.parametrize('path', BASELINES, ids=name_of)
def test_baseline_builds(path, tmp_path):
    model = build(path, tmp_path)
    method = name_of(path).split('_')[0]
    loss = model.distill_loss
    assert (None if loss is None else type(loss).__name__) == METHODS[method]
    assert model.kd_weight == 0.9
    if method in ('fitnet', 'at', 'l2t'):  # stage ends, in stage order
        assert len(model.teacher_recorder.names) == 3
        assert len(model.student_recorder.names) == 3
    if method in ('rkd', 'crd'):
        assert model.student_recorder.names == ['neck.gap']
        assert model.teacher_recorder.names == ['neck.gap']
    if method == 'crd':
        assert loss.num_data is None  # the training set's, at train time


def _check_ablation(name, model):
    loss = model.distill_loss
    variant = name.split('_')[-1]
    if variant.startswith('links-'):
        assert loss.links == variant[len('links-'):]
    elif variant.startswith('teacher-'):
        num = int(''.join(c for c in variant if c.isdigit()))
        assert len(model.teacher_recorder.names) == num
        assert len(model.student_recorder.names) == 9
    elif variant.startswith('dist-'):
        assert loss.distance == variant[len('dist-'):]
    elif variant.startswith('pool-'):
        assert loss.pooling == variant[len('pool-'):]
    else:
        assert loss.loss_weight == float(variant[len('beta'):])


@pytest.mark.parametrize('path', ABLATIONS, ids=name_of)
def test_ablation_builds(path, tmp_path):
    model = build(path, tmp_path)
    assert type(model.distill_loss).__name__ == 'AFDLoss'
    _check_ablation(name_of(path), model)


def test_ablations_cover_tables_4_to_7_and_fig_5():
    variants = {name_of(p).split('_', 1)[1] for p in ABLATIONS}
    for links in ('ordered', 'random', 'fixed'):
        assert f'r56_r20_links-{links}' in variants
    for mode in ('interval', 'random'):
        assert any(v.startswith(f'r56_r20_teacher-{mode}') for v in variants)
    for option in ('dist-l1', 'dist-kl', 'dist-cosine', 'pool-a1',
                   'pool-max', 'beta30', 'beta50', 'beta100'):
        assert f'wrn40-2_wrn16-2_{option}' in variants


@pytest.mark.parametrize('path', BASELINES + ABLATIONS, ids=name_of)
def test_only_the_loss_block_differs(path):
    cfg = load(path).to_dict()
    afd = load(afd_config_of(path)).to_dict()
    model, afd_model = cfg.pop('model'), afd.pop('model')
    assert cfg == afd  # data, schedule, runtime
    for key in (set(model) | set(afd_model)) - LOSS_BLOCK:
        assert model.get(key) == afd_model.get(key), key
    assert model['student'] == afd_model['student']


# ------------------------------------------------- 2 iterations, each loss
def _tiny_overrides(method):
    """--cfg-options turning the tiny AFD run into ``method``'s run.

    The loss block is the R56 -> R20 baseline's, key by key; the recorders
    are adapted to the tiny nets (ResNet-14 teacher: stage ends are blocks
    1, 3, 5; ResNet-8 student: its 3 blocks are its stage ends).
    """
    if method == 'afd':
        return []
    path = osp.join(REPO, f'configs/{method}/{method}_r56_r20_cifar100.py')
    loss = load(path).model.distill_loss
    if loss is None:
        return ['model.distill_loss=None']
    opts = [f'model.distill_loss.{k}={v}' for k, v in loss.items()
            if k != '_delete_']
    if method in ('rkd', 'crd'):
        opts += ['model.student_recorder.patterns=neck.gap',
                 'model.teacher_recorder.patterns=neck.gap']
    else:
        opts.append('model.teacher_recorder.indices=[1,3,5]')
    if method == 'l2t':  # its look-ahead on 8 images of random nets can
        # diverge at lr 0.05, depending on the init (which any change to
        # the order of parameter creation moves)
        opts.append('optim_wrapper.optimizer.lr=0.01')
    return opts



@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_cifar100(str(tmp_path_factory.mktemp('cifar')),
                          num_train=8, num_test=4)


@pytest.mark.parametrize('method', ['afd'] + list(METHODS))
def test_two_iterations(method, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv('AFD_TEST_DATA', data_root)
    argv = [TINY, '--work-dir', str(tmp_path), '--no-validate',
            '--cfg-options', 'train_cfg.max_epochs=1', 'log_level=WARNING',
            *_tiny_overrides(method)]
    runner = load_tool('train').main(argv)
    assert runner.iter == 2
    loss = runner.model.distill_loss
    expected = METHODS.get(method, 'AFDLoss')
    assert (None if loss is None else type(loss).__name__) == expected
    scalars = runner.message_hub.log_scalars
    assert 'train/loss_cls' in scalars and 'train/loss_kd' in scalars
    if loss is not None:
        assert f'train/{loss.loss_name}' in scalars
    if method == 'l2t':
        assert int(loss.meta_step) == 2
    if method == 'crd':  # TrainSetSizeHook: the fixture's 8 images
        assert loss.num_data == 8 and loss.memory_s.shape[0] == 8
