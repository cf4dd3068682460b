"""configs/{dkd,dist,reviewkd,kd_ls}/: every pair, the papers' settings,
metafiles and README tables, and 2 training iterations of each method."""
import glob
import os.path as osp

import pytest
import yaml
from cifar_fixture import write_cifar100
from conftest import REPO, load_tool
from mmengine.config import Config

import afd_mm  # noqa: F401  (registers)
from afd_mm.models.zoo_teacher import is_zoo_name, zoo_teacher
from afd_mm.registry import MODELS

METHODS = {'dkd': 'DKDLoss', 'dist': 'DISTLoss', 'reviewkd': 'ReviewKDLoss',
           'kd_ls': None}
SETTINGS = ('r56_r20_cifar100', 'r110_r20_cifar100', 'r110_r56_cifar100',
            'wrn40-2_wrn16-2_cifar100', 'wrn40-2_wrn40-2_cifar100',
            'wrn40-2_r56_cifar100', 'r34_wrn28-2_cifar100',
            'r34_r18_imagenet')
CONFIGS = sorted(p for m in METHODS
                 for p in glob.glob(osp.join(REPO, 'configs', m, '*.py')))
WARMUP = {'dkd': 'loss_dkd', 'reviewkd': 'loss_reviewkd'}
TINY = osp.join(REPO, 'tests/data/afd_tiny_cifar.py')


def method_of(path):
    return osp.basename(osp.dirname(path))


def setting_of(path):
    return osp.basename(path)[:-3].split('_', 1)[1]


def test_every_method_has_every_setting():
    for method in METHODS:
        got = {setting_of(p) for p in CONFIGS if method_of(p) == method}
        assert got == set(SETTINGS), method


def test_metafiles_readmes_and_model_index():
    with open(osp.join(REPO, 'model-index.yml')) as f:
        imports = yaml.safe_load(f)['Import']
    for method in METHODS:
        assert f'configs/{method}/metafile.yml' in imports
        with open(osp.join(REPO, 'configs', method, 'metafile.yml')) as f:
            meta = yaml.safe_load(f)
        listed = sorted(m['Config'] for m in meta['Models'])
        assert listed == sorted(osp.relpath(p, REPO) for p in CONFIGS
                                if method_of(p) == method)
        with open(osp.join(REPO, 'configs', method, 'README.md')) as f:
            readme = f.read()
        for path in listed:
            assert f'`{osp.basename(path)}`' in readme, path


def _build(path):
    cfg = Config.fromfile(path)
    model = cfg.model
    model.teacher_ckpt = None  # the real weights are not here
    if isinstance(model.teacher, str) and is_zoo_name(model.teacher):
        model.teacher = zoo_teacher(model.teacher)[0]  # no download
    return cfg, MODELS.build(model)


@pytest.mark.parametrize('path', CONFIGS,
                         ids=lambda p: osp.basename(p)[:-3])
def test_config_builds_with_the_papers_settings(path):
    cfg, model = _build(path)
    method, imagenet = method_of(path), 'imagenet' in path
    loss = model.distill_loss
    assert (None if loss is None else type(loss).__name__) == METHODS[method]
    if method == 'kd_ls':
        assert model.kd_standardize and model.kd_temperature == 2.0
        assert model.kd_weight == (0.5 if imagenet else 9.0)
        assert model.student.head.loss_module.loss_weight == \
            (0.5 if imagenet else 0.1)
        return
    assert model.kd_weight == 0.0
    if method == 'dkd':
        beta = 0.5 if imagenet else (
            6.0 if 'wrn40-2_' in path else 8.0 if 'r34_' in path else 2.0)
        assert (loss.alpha, loss.beta, loss.temperature) == \
            (1.0, beta, 1.0 if imagenet else 4.0)
    if method == 'dist':
        w, t = (1.0, 1.0) if imagenet else (2.0, 4.0)
        assert (loss.beta, loss.gamma, loss.temperature) == (w, w, t)
    if method in ('dkd', 'dist'):
        assert model.student_recorder.names == ['head.fc']
        assert model.teacher_recorder.names == ['head.fc']
    if method == 'reviewkd':
        levels = 5 if imagenet else 4
        assert len(model.student_recorder.names) == levels
        assert len(model.teacher_recorder.names) == levels
        assert model.student_recorder.names[-1] == 'neck.gap'
    if method in WARMUP:
        hooks = [h for h in cfg.custom_hooks
                 if h['type'] == 'afd_mm.DistillScheduleHook']
        assert hooks[0]['schedules'] == {
            WARMUP[method]: dict(warmup=1 if imagenet else 20)}


def test_imagenet_recipe_names_the_model_zoo_teacher():
    cfg = Config.fromfile(osp.join(REPO, 'configs/afd_r34_r18_imagenet.py'))
    assert cfg.model.teacher == 'resnet34_8xb32_in1k'
    assert cfg.model.get('teacher_ckpt') is None


# ------------------------------------------ 2 iterations, each method
TINY_OPTIONS = {  # the R56 -> R20 loss block, recorders fitted to R14 -> R8
    'dkd': ['model.student_recorder.patterns=head.fc',
            'model.teacher_recorder.patterns=head.fc',
            'model.student_recorder.indices=None',
            'model.teacher_recorder.indices=None'],
    'reviewkd': ['model.student_recorder.patterns=[backbone.layer*.0,'
                 'neck.gap]',
                 'model.teacher_recorder.patterns=[backbone.layer*.1,'
                 'neck.gap]'],
}
TINY_OPTIONS['dist'] = TINY_OPTIONS['dkd']



@pytest.mark.parametrize('method', list(METHODS))
def test_two_iterations(method, tmp_path, monkeypatch):
    root = write_cifar100(str(tmp_path / 'cifar'), num_train=8, num_test=4)
    monkeypatch.setenv('AFD_TEST_DATA', root)
    path = osp.join(REPO, 'configs', method,
                    f'{method.replace("_", "-")}_r56_r20_cifar100.py')
    cfg = Config.fromfile(path)
    opts = []
    loss = cfg.model.distill_loss
    if loss is not None:
        opts += [f'model.distill_loss.{k}={v}' for k, v in loss.items()
                 if k != '_delete_']
    else:
        opts.append('model.distill_loss=None')
    for key in ('kd_weight', 'kd_temperature', 'kd_standardize'):
        if key in cfg.model:
            opts.append(f'model.{key}={cfg.model[key]}')
    tiny = TINY
    if method in WARMUP:  # the config's hook, on the tiny run
        tiny = str(tmp_path / 'tiny.py')
        with open(tiny, 'w') as f:
            f.write(f'_base_ = {TINY!r}\n'
                    f'custom_hooks = {cfg.custom_hooks!r}\n')
    argv = [tiny, '--work-dir', str(tmp_path / 'work'), '--no-validate',
            '--cfg-options', 'train_cfg.max_epochs=1', 'log_level=WARNING',
            *opts, *TINY_OPTIONS.get(method, [])]
    runner = load_tool('train').main(argv)
    assert runner.iter == 2
    scalars = runner.message_hub.log_scalars
    assert 'train/loss_cls' in scalars
    key = 'loss_kd' if method == 'kd_ls' else runner.model.loss_terms[0].key
    assert f'train/{key}' in scalars
    if method in WARMUP:
        assert runner.model.distill_scales == {key: 1 / 20}
