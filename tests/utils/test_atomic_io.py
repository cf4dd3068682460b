"""Atomic checkpoint writes (afd_mm/utils/atomic_io.py)."""
import importlib
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.fileio.backends import registry_utils
from mmengine.logging import MMLogger

import afd_mm
from afd_mm.utils.atomic_io import (
    AtomicLocalBackend,
    find_resumable_checkpoint,
    use_atomic_local_writes,
)
from afd_mm.utils.checkpoint import load_checkpoint_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# Saves ever larger checkpoints to one path through mmengine, forever.
_SAVE_FOREVER = '''
import sys
import torch
from mmengine.runner.checkpoint import save_checkpoint
from afd_mm.utils.atomic_io import use_atomic_local_writes
use_atomic_local_writes()
step = 1
while True:
    save_checkpoint({'step': step, 'w': torch.full((4_000_000, ), step)},
                    sys.argv[1])
    step += 1
'''


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith('.tmp'))


def test_put_and_put_text_write_whole_files(tmp_path):
    backend = AtomicLocalBackend()
    target = tmp_path / 'sub' / 'epoch_1.pth'
    backend.put(b'old', target)
    backend.put(b'new bytes', target)
    backend.put_text('work/epoch_1.pth', tmp_path / 'last_checkpoint')
    assert target.read_bytes() == b'new bytes'
    assert (tmp_path / 'last_checkpoint').read_text() == 'work/epoch_1.pth'
    assert _leftovers(tmp_path / 'sub') == [] == _leftovers(tmp_path)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / 'epoch_1.pth'
    target.write_bytes(b'complete old checkpoint')

    def disk_full(fd):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(OSError, match='No space left'):
        AtomicLocalBackend().put(b'half', target)
    assert target.read_bytes() == b'complete old checkpoint'
    assert _leftovers(tmp_path) == []


def test_registered_for_local_paths(tmp_path):
    use_atomic_local_writes()
    use_atomic_local_writes()  # idempotent
    assert isinstance(get_file_backend(str(tmp_path)), AtomicLocalBackend)
    by_name = get_file_backend(backend_args=dict(backend='local'))
    assert isinstance(by_name, AtomicLocalBackend)


def test_importing_afd_mm_makes_local_writes_atomic(monkeypatch):
    monkeypatch.setitem(registry_utils.backends, 'local', LocalBackend)
    monkeypatch.setitem(registry_utils.prefix_to_backends, '', LocalBackend)
    importlib.reload(afd_mm)  # runs afd_mm/__init__.py again
    assert isinstance(get_file_backend('/tmp'), AtomicLocalBackend), (
        'afd_mm/__init__.py must call use_atomic_local_writes()')


def test_sigkill_while_saving_never_leaves_a_torn_checkpoint(tmp_path):
    target = tmp_path / 'epoch_1.pth'
    proc = subprocess.Popen(
        [sys.executable, '-c', _SAVE_FOREVER, str(target)], cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    try:
        _wait_for(lambda: target.exists() and _leftovers(tmp_path), proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ckpt = load_checkpoint_file(str(target), 'load_from')
    assert torch.equal(ckpt['w'], torch.full((4_000_000, ), ckpt['step']))
    assert find_resumable_checkpoint(str(tmp_path)) == str(target)


def _wait_for(condition, proc, timeout=60.0):
    """Poll ``condition`` every millisecond while ``proc`` runs."""
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError(f'writer ended early (rc {proc.returncode})'
                                 ' or never started a second write')
        time.sleep(0.001)


@pytest.mark.parametrize('pointer', [None, '', 'epoch_3.pth', 'epoch_2.pth'])
def test_find_resumable_checkpoint(tmp_path, pointer):
    for step in (1, 2):
        (tmp_path / f'epoch_{step}.pth').write_bytes(b'x')
        os.utime(tmp_path / f'epoch_{step}.pth', ns=(step, step))
    (tmp_path / '.epoch_3.pth.123.abcd.tmp').write_bytes(b'torn')
    if pointer is not None:  # '', epoch_3: torn or dangling pointer
        named = str(tmp_path / pointer) if pointer else ''
        (tmp_path / 'last_checkpoint').write_text(named)
    found = find_resumable_checkpoint(str(tmp_path))
    assert found == str(tmp_path / 'epoch_2.pth')


def test_find_resumable_checkpoint_follows_a_valid_pointer(tmp_path):
    for name in ('epoch_1.pth', 'epoch_2.pth'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resumable_checkpoint(str(tmp_path)) == str(
        tmp_path / 'epoch_1.pth')
    assert find_resumable_checkpoint(str(tmp_path / 'none')) is None


def _checkpoint(path, step):
    torch.save({'step': step, 'w': torch.full((1000, ), float(step))}, path)
    os.utime(path, ns=(step, step))


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    for step in (1, 2, 3, 4):
        _checkpoint(tmp_path / f'epoch_{step}.pth', step)
    four = tmp_path / 'epoch_4.pth'
    data = bytearray(four.read_bytes())
    data[bytes(data).index(torch.full((1000, ), 4.0).numpy().tobytes())
         + 2000] ^= 0xff  # a flipped byte inside the tensor
    four.write_bytes(bytes(data))
    three = tmp_path / 'epoch_3.pth'
    three.write_bytes(three.read_bytes()[:300])  # truncated
    os.utime(three, ns=(3, 3))
    (tmp_path / 'epoch_2.pth').write_bytes(b'')  # empty
    os.utime(tmp_path / 'epoch_2.pth', ns=(2, 2))
    (tmp_path / 'last_checkpoint').write_text(str(four))
    # the newest MMLogger is the one print_log(logger='current') uses
    logger = MMLogger.get_instance(f'fallback_{tmp_path.name}')
    with _captured(logger) as lines:
        found = find_resumable_checkpoint(str(tmp_path))
    assert found == str(tmp_path / 'epoch_1.pth')
    skipped = [line for line in lines if line.startswith('--resume: skip')]
    assert [line.split(':')[1].strip() for line in skipped] == [
        f'skipped {tmp_path}/epoch_{n}.pth' for n in (4, 3, 2)]
    assert 'CRC' in skipped[0] and 'truncated' in skipped[1] \
        and 'empty' in skipped[2]


def test_resume_with_nothing_intact_finds_nothing(tmp_path):
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    assert find_resumable_checkpoint(str(tmp_path)) is None


def test_next_successful_save_removes_stale_tmp_files(tmp_path):
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    stale = tmp_path / f'.epoch_2.pth.{dead.pid}.0123abcd.tmp'
    live = tmp_path / f'.epoch_2.pth.{os.getppid()}.4567cdef.tmp'
    other = tmp_path / 'notes.tmp'  # not ours: kept
    for path in (stale, live, other):
        path.write_bytes(b'half a checkpoint')
    AtomicLocalBackend().put(b'whole', tmp_path / 'epoch_3.pth')
    assert not stale.exists()
    assert live.exists() and other.exists()  # a running writer's file
    assert (tmp_path / 'epoch_3.pth').read_bytes() == b'whole'


class _captured:
    """Collect the messages ``logger`` emits inside the block."""

    def __init__(self, logger):
        self.logger, self.lines = logger, []
        self.handler = logging.Handler()
        self.handler.emit = lambda record: self.lines.append(
            record.getMessage())

    def __enter__(self):
        self.logger.addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc):
        self.logger.removeHandler(self.handler)
