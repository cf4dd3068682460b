"""Safe loading: every user-provided file goes through the allow-list.

A real training checkpoint loads under ``weights_only=True``; a file
crafted to run code when unpickled (its ``__reduce__`` opens a marker file
for writing) is refused with afd_mm's message, whichever way the user
hands it over, and the marker is never created.
"""
import os
import os.path as osp
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch
from cifar_fixture import write_cifar100
from conftest import tiny_classifier
from mmengine.config import Config
from mmengine.runner import Runner

from afd_mm.models.losses.afd_loss import AFDLoss
from afd_mm.registry import MODELS
from afd_mm.utils.checkpoint import load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CFG = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')


class CreatesFile:
    """Unpickling this opens ``path`` for writing, i.e. creates it."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, 'w')


@pytest.fixture
def crafted(tmp_path):
    """(a checkpoint whose unpickling creates ``marker``, ``marker``)."""
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'crafted.pth'
    torch.save({'state_dict': {'w': CreatesFile(marker)}, 'meta': {}}, path)
    return str(path), marker


def test_crafted_file_would_run_code_without_the_allow_list(crafted):
    path, marker = crafted
    # the control: a plain unpickler, which is what loading without the
    # allow-list amounts to, runs the payload stored in the pickle
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith('data.pkl'))
        pickle.loads(archive.read(name))
    assert marker.exists()


def test_real_training_checkpoint_loads(tmp_path, monkeypatch):
    monkeypatch.setenv('AFD_TEST_DATA', write_cifar100(str(tmp_path / 'd')))
    cfg = Config.fromfile(TINY_CFG)
    cfg.merge_from_dict(dict(work_dir=str(tmp_path / 'w'), log_level='ERROR',
                             train_cfg=dict(max_epochs=1), val_cfg=None,
                             val_dataloader=None, val_evaluator=None))
    Runner.from_cfg(cfg).train()
    ckpt = load_checkpoint_file(str(tmp_path / 'w' / 'epoch_1.pth'),
                                'load_from')
    assert {'state_dict', 'optimizer', 'message_hub', 'meta'} <= set(ckpt)
    assert any(k.startswith('distill_loss.attention') for k in
               ckpt['state_dict'])


def test_crafted_teacher_ckpt_is_refused(crafted):
    path, marker = crafted
    model = dict(type='afd_mm.AFDDistiller', student=tiny_classifier(8),
                 teacher=tiny_classifier(14), teacher_ckpt=path)
    with pytest.raises(RuntimeError, match='Refused to load') as err:
        MODELS.build(model)
    assert '`teacher_ckpt`' in str(err.value) and path in str(err.value)
    assert not marker.exists()


def test_crafted_links_file_is_refused(crafted, tmp_path):
    _, marker = crafted
    links = tmp_path / 'links.pt'
    torch.save(CreatesFile(marker), links)
    shapes = [(16, 8, 8), (32, 4, 4)]
    with pytest.raises(RuntimeError, match='Refused to load') as err:
        AFDLoss(shapes, shapes, links='fixed', links_file=str(links))
    assert 'links_file' in str(err.value)
    assert not marker.exists()


def test_crafted_resume_checkpoint_is_refused(crafted, tmp_path):
    path, marker = crafted
    env = dict(os.environ, OMP_NUM_THREADS='1',
               AFD_TEST_DATA=write_cifar100(str(tmp_path / 'd')),
               PYTHONPATH=os.pathsep.join(
                   [osp.join(REPO, 'tests'), REPO] + _inherited()))
    run = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), TINY_CFG,
         '--work-dir', str(tmp_path / 'w'), '--resume', path],
        env=env, cwd=REPO, capture_output=True, text=True)
    assert run.returncode != 0
    assert 'Refused to load' in run.stderr and path in run.stderr, \
        run.stderr[-3000:]
    assert not marker.exists()


def test_plain_pickle_is_refused_too(tmp_path):
    """A bare pickle (not torch's zip format) cannot slip through."""
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'plain.pkl'
    path.write_bytes(pickle.dumps(CreatesFile(marker)))
    with pytest.raises(RuntimeError, match='Refused to load'):
        load_checkpoint_file(str(path), 'teacher_ckpt')
    assert not marker.exists()


def _inherited():
    """The caller's own PYTHONPATH entries, kept after ours."""
    return [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
            if p]
