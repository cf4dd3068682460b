"""The per-method config folders (mmpretrain/mmrazor layout): each has a
README table and a metafile.yml, all listed in model-index.yml."""
import glob
import os.path as osp

import pytest
from conftest import REPO
from mmengine.fileio import load

FOLDERS = sorted(
    osp.basename(d) for d in glob.glob(osp.join(REPO, 'configs', '*'))
    if osp.isdir(d) and osp.basename(d) not in ('_base_', 'teachers', 'demo'))
COLUMNS = ('| setting | teacher | student | paper top-1 | our config | '
           'command |')


def _configs(folder):
    pattern = 'afd_*.py' if folder is None else osp.join(folder, '*.py')
    return sorted(osp.relpath(p, REPO) for p in glob.glob(
        osp.join(REPO, 'configs', pattern)))


def test_model_index_lists_every_metafile():
    index = load(osp.join(REPO, 'model-index.yml'))['Import']
    expected = ['configs/metafile.yml'] + [
        f'configs/{f}/metafile.yml' for f in FOLDERS]
    assert sorted(index) == sorted(expected)


@pytest.mark.parametrize('folder', [None] + FOLDERS)
def test_metafile_lists_every_config(folder):
    where = osp.join(REPO, 'configs', folder or '')
    meta = load(osp.join(where, 'metafile.yml'))
    listed = sorted(m['Config'] for m in meta['Models'])
    assert listed == _configs(folder)
    assert meta['Collections'][0]['Paper']['URL'].startswith('https://')


@pytest.mark.parametrize('folder', FOLDERS)
def test_readme_table_has_every_config(folder):
    text = open(osp.join(REPO, 'configs', folder, 'README.md')).read()
    assert COLUMNS in text
    for path in _configs(folder):
        assert (f'`python tools/train.py {path}`' in text
                or f'`bash tools/dist_train.sh {path} ' in text), path
