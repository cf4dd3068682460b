"""Every shipped config is addressable as ``afd_mm::FOLDER/NAME.py`` from a
folder outside the repo, in this (editable) checkout and in a wheel install.

mmengine only resolves ``pkg::folder/name.py`` (a folder is required), so
the paper's AFD recipes, which stay directly in ``configs/`` (the mission's
``tools/train.py configs/afd_r34_r18_imagenet.py``), are addressed as
``afd_mm::afd/<recipe>.py`` through ``afd_mm/.mim/configs/afd/``.
"""
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO, has_mmdet, require_mmdet
from mmengine.config import Config

import afd_mm  # noqa: F401  (knows `afd_mm::`, as afd_mm's tools do)

MIM = osp.join(REPO, 'afd_mm', '.mim', 'configs')
SHIPPED = sorted(
    osp.relpath(p, osp.join(REPO, 'configs'))
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                       recursive=True)
    if '_base_' not in osp.relpath(p, REPO))


# loading their `mmdet::` bases needs mmdet (mmengine would pip-install it)
DETECTION_FOLDERS = ('detection/', 'cwd/')


def address(rel):
    """The ``afd_mm::`` address of ``configs/<rel>``."""
    return 'afd_mm::' + (rel if '/' in rel else f'afd/{rel}')


def one_per_folder():
    seen = {}
    for rel in SHIPPED:
        seen.setdefault(osp.dirname(rel) or 'afd', rel)
    return sorted(seen.values())


def test_mim_mirrors_configs():
    """Each entry of configs/ has its link in afd_mm/.mim/configs/ (the
    package's view of them), each top-level recipe one in .mim/configs/afd/.
    """
    for name in os.listdir(osp.join(REPO, 'configs')):
        link = osp.join(MIM, name)
        assert osp.realpath(link) == \
            osp.realpath(osp.join(REPO, 'configs', name)), (
                f'configs/{name} is not visible as afd_mm::{name}: run '
                f'`ln -s ../../../configs/{name} afd_mm/.mim/configs/{name}`')
    for rel in SHIPPED:
        if '/' not in rel:
            assert osp.isfile(osp.join(MIM, 'afd', rel)), (
                f'run `ln -s ../../../../configs/{rel} '
                f'afd_mm/.mim/configs/afd/{rel}`')


def _resolve(rel, where):
    path, _ = Config._get_cfg_path(address(rel), osp.join(where, 'my.py'))
    return path


def test_every_config_resolves_from_outside(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for rel in SHIPPED:
        assert osp.realpath(_resolve(rel, str(tmp_path))) == \
            osp.realpath(osp.join(REPO, 'configs', rel)), rel


@pytest.mark.parametrize('rel', one_per_folder())
def test_base_from_outside(rel, tmp_path, monkeypatch):
    if rel.startswith(DETECTION_FOLDERS):
        require_mmdet()
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'my.py').write_text(
        f"_base_ = '{address(rel)}'\nwork_dir = 'mine'\n")
    cfg = Config.fromfile(str(tmp_path / 'my.py'))
    assert cfg.work_dir == 'mine'
    model = cfg.model.to_dict()
    assert model.pop('_scope_') == 'afd_mm'  # mmengine marks external bases
    repo = Config.fromfile(osp.join(REPO, 'configs', rel)).model.to_dict()
    for cfg_dict in (model, repo):  # a teacher config found by file path
        if isinstance(cfg_dict.get('teacher'), str):
            cfg_dict['teacher'] = osp.realpath(cfg_dict['teacher'])
    assert model == repo


_WHEEL_CHECK = """
import json, os.path as osp, sys
import afd_mm
from mmengine.config import Config
rels, out = json.loads(sys.argv[1]), {}
for rel, addr in rels:
    open('my.py', 'w').write(f"_base_ = '{addr}'\\n")
    cfg = Config.fromfile('my.py')
    out[rel] = [osp.dirname(afd_mm.__file__), cfg.model.type]
print(json.dumps(out))
"""


@pytest.fixture(scope='module')
def wheel_site(tmp_path_factory):
    """afd_mm installed from a wheel into a folder of its own."""
    site = str(tmp_path_factory.mktemp('site'))
    subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
         '--no-build-isolation', '--no-compile', '--target', site, REPO],
        check=True, capture_output=True)
    return site


def test_wheel_install_addresses_every_folder(wheel_site, tmp_path):
    rels = [[rel, address(rel)] for rel in one_per_folder()
            if has_mmdet() or not rel.startswith(DETECTION_FOLDERS)]
    env = dict(os.environ, PYTHONPATH=wheel_site, OMP_NUM_THREADS='1')
    run = subprocess.run(
        [sys.executable, '-c', _WHEEL_CHECK, json.dumps(rels)], env=env,
        cwd=str(tmp_path), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    for rel, _ in rels:
        package, model_type = out[rel]
        assert package == osp.join(wheel_site, 'afd_mm'), package
        assert model_type in ('afd_mm.AFDDistiller', 'ImageClassifier'), rel
    packaged = {osp.relpath(p, osp.join(wheel_site, 'afd_mm', '.mim',
                                        'configs'))
                for p in glob.glob(osp.join(wheel_site, 'afd_mm', '.mim',
                                            'configs', '**', '*.py'),
                                   recursive=True)}
    assert set(SHIPPED) <= packaged
