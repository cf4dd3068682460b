"""Safe loading: every user-provided file goes through the allow-list.

A real training checkpoint loads under ``weights_only=True``; a file
crafted to run code when unpickled (its ``__reduce__`` opens a marker file
for writing) is refused with afd_mm's message, whichever way the user
hands it over, and the marker is never created. A checkpoint of plain
data whose stored config text would run code (it opens a marker file) is
used by every entry point without running that text. Damaged files are
refused as corrupt, downloads are cached by URL and checked against the
hash prefix of their name.
"""
import hashlib
import http.server
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys
import threading
import zipfile

import pytest
import torch
from cifar_fixture import write_cifar100
from conftest import load_tool, tiny_classifier
from mmengine.config import Config
from mmengine.runner import Runner

from afd_mm.models.losses.afd_loss import AFDLoss
from afd_mm.registry import MODELS
from afd_mm.utils.checkpoint import (
    CorruptCheckpointError,
    load_checkpoint_file,
)

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
    # names the refused global (the payload pickles `open`)
    assert 'Refused: the pickled global ' in str(err.value)
    assert 'open' in str(err.value).split('Refused: ')[1]
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


# Config text that runs code when mmengine's Config.fromstring reads it.
PAYLOAD = "ran = open({marker!r}, 'w').write('config text ran')\n"




@pytest.fixture
def config_that_runs(trained, tmp_path, monkeypatch):
    """(the trained checkpoint with code as its stored config, marker)."""
    monkeypatch.setenv('AFD_TEST_DATA', trained[0])
    marker = tmp_path / 'config_ran'
    checkpoint = torch.load(trained[1], weights_only=True)
    checkpoint['meta']['config'] = PAYLOAD.format(marker=str(marker))
    checkpoint['meta']['cfg'] = PAYLOAD.format(marker=str(marker))
    path = tmp_path / 'stored_config.pth'
    torch.save(checkpoint, path)
    return str(path), marker


def test_stored_config_text_would_run_if_parsed(config_that_runs):
    path, marker = config_that_runs
    text = torch.load(path, weights_only=True)['meta']['config']
    Config.fromstring(text, file_format='.py')  # what Runner.resume does
    assert marker.exists()  # the control: mmengine runs the text


@pytest.mark.parametrize('entry', [
    'resume', 'resume_auto', 'load_from_test', 'teacher_ckpt', 'save_links',
    'links_file'])
def test_stored_config_text_never_runs(config_that_runs, entry, tmp_path):
    path, marker = config_that_runs
    work = str(tmp_path / 'work')
    train = [TINY_CFG, '--work-dir', work, '--no-validate', '--cfg-options',
             'train_cfg.max_epochs=2', 'log_level=WARNING']
    if entry == 'resume':
        runner = load_tool('train').main(train + ['--resume', path])
        assert runner.iter == 4  # resumed at 2, trained epoch 2
    elif entry == 'resume_auto':
        os.makedirs(work)
        shutil.copy(path, osp.join(work, 'epoch_1.pth'))
        runner = load_tool('train').main(train + ['--resume'])
        assert runner.iter == 4
    elif entry == 'load_from_test':
        metrics = load_tool('test').main([TINY_CFG, path, '--work-dir', work])
        assert 'accuracy/top1' in metrics
    elif entry == 'teacher_ckpt':
        student = Config.fromfile(TINY_CFG).model.student.to_dict()
        MODELS.build(dict(type='afd_mm.AFDDistiller', student=student,
                          teacher=student, teacher_ckpt=path))
    elif entry == 'save_links':
        load_tool('save_links').main([TINY_CFG, path, '--device', 'cpu',
                                      '--out', str(tmp_path / 'l.npy')])
    else:
        links = str(tmp_path / 'links.pt')
        torch.save(torch.load(path, weights_only=True), links)
        shapes = [(16, 8, 8), (32, 4, 4)]
        with pytest.raises(ValueError, match='holds a dict'):
            AFDLoss(shapes, shapes, links='fixed', links_file=links)
    assert not marker.exists()


def _save_tensor(path, values):
    torch.save({'state_dict': {'w': values}}, path)
    return values.numpy().tobytes()


def test_flipped_byte_inside_a_tensor_is_a_corrupt_file(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    raw = _save_tensor(path, torch.arange(4096, dtype=torch.float32))
    data = bytearray(path.read_bytes())
    at = bytes(data).index(raw) + len(raw) // 2
    data[at] ^= 0x10  # one bit in the middle of the tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError) as err:
        load_checkpoint_file(str(path), 'load_from')
    message = str(err.value)
    assert message.startswith(f'Corrupt file {str(path)!r} (`load_from`)')
    assert 'CRC' in message and 'Refused' not in message
    assert 'Point `load_from` at an intact copy' in message


@pytest.mark.parametrize('cut', ['empty', 'truncated'])
def test_empty_or_truncated_file_is_a_corrupt_file(tmp_path, cut):
    path = tmp_path / 'teacher.pth'
    _save_tensor(path, torch.ones(1000))
    data = path.read_bytes()
    path.write_bytes(b'' if cut == 'empty' else data[:len(data) // 2])
    with pytest.raises(CorruptCheckpointError) as err:
        load_checkpoint_file(str(path), 'teacher_ckpt')
    message = str(err.value)
    assert message.startswith(f'Corrupt file {str(path)!r} (`teacher_ckpt`)')
    assert ('empty' if cut == 'empty' else 'truncated') in message
    assert 'Refused' not in message


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An http server of ``tmp_path/site``; torch hub's cache in tmp."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, '_hub_dir', None)
    site = tmp_path / 'site'
    site.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield site, f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def test_urls_with_the_same_file_name_are_cached_apart(server):
    site, base = server
    for folder, value in (('a', 1.0), ('b', 2.0)):
        (site / folder).mkdir()
        _save_tensor(site / folder / 'teacher.pth', torch.full((3, ), value))
    first = load_checkpoint_file(f'{base}/a/teacher.pth')
    second = load_checkpoint_file(f'{base}/b/teacher.pth')
    assert first['state_dict']['w'].tolist() == [1.0] * 3
    assert second['state_dict']['w'].tolist() == [2.0] * 3


def test_hash_prefix_of_the_file_name_is_verified(server):
    site, base = server
    _save_tensor(site / 'good.pth', torch.ones(3))
    digest = hashlib.sha256((site / 'good.pth').read_bytes()).hexdigest()
    (site / 'good.pth').rename(site / f'r18-{digest[:8]}.pth')
    good = load_checkpoint_file(f'{base}/r18-{digest[:8]}.pth')
    assert good['state_dict']['w'].tolist() == [1.0] * 3
    _save_tensor(site / 'r18-0badc0de.pth', torch.ones(3))
    url = f'{base}/r18-0badc0de.pth'
    with pytest.raises(RuntimeError) as err:
        load_checkpoint_file(url, 'teacher_ckpt')
    message = str(err.value)
    assert message.startswith('Hash mismatch: ')
    assert 'r18-0badc0de.pth' in message and url in message
    assert 'promises 0badc0de' in message and '`teacher_ckpt`' in message


def _inherited():
    """The caller's own PYTHONPATH entries, kept after ours."""
    return [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep)
            if p]
