"""Atomic local writes, so a crash while saving never leaves a torn file.

mmengine writes checkpoints through its file backends: ``save_checkpoint``
serialises to memory and calls ``backend.put(bytes, path)``; the default
``LocalBackend`` opens ``path`` with ``'wb'`` and writes, so a process
killed (SIGKILL, OOM killer, node failure) in the middle of the write
leaves a truncated ``epoch_N.pth``. :class:`AtomicLocalBackend` writes to a
temporary file in the same folder, ``fsync``s it, ``os.replace``s it onto
``path`` (atomic on POSIX and Windows) and ``fsync``s the folder: the file
at ``path`` is always either the old one or the complete new one.
:func:`use_atomic_local_writes` registers it, through mmengine.fileio's
public ``register_backend``, for local paths (prefix ``''``, name
``'local'``).

mmengine's ``CheckpointHook`` writes the ``last_checkpoint`` pointer with a
plain ``open(..., 'w')``, not through a backend. Checkpoints are saved
before the pointer is updated, so the pointer names a complete file; the
one gap, a crash inside that tiny write, leaves an empty or cut pointer.
:func:`find_resumable_checkpoint` reads the pointer and, when it is empty
or names a missing file, falls back to the newest checkpoint in the folder;
any candidate that fails the integrity check (empty, truncated, CRC
mismatch: damaged after it was written) is skipped with a warning.
"""
import logging
import os
import os.path as osp
import re
import uuid
from pathlib import Path
from typing import List, Optional, Union

import mmengine
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log

from .checkpoint import CorruptCheckpointError, verify_integrity

TMP_SUFFIX = '.tmp'
_STEP = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
_TMP = re.compile(r'^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$')


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose writes are atomic.

    ``put``/``put_text`` write ``.<name>.<pid>.<random>.tmp`` next to the
    target, flush and ``fsync`` it, then ``os.replace`` it onto the
    target. If the write fails the temporary file is removed and the target
    is untouched; if the process is killed, a hidden ``*.tmp`` file may be
    left behind, never a torn target; it is removed by the next
    successful write to that folder (:func:`remove_stale_tmp_files`).
    Reads are ``LocalBackend``'s.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` atomically (creates its folder)."""
        filepath = str(filepath)
        folder = osp.dirname(osp.abspath(filepath))
        mmengine.mkdir_or_exist(folder)
        tmp = osp.join(folder, _tmp_name(osp.basename(filepath)))
        try:
            with open(tmp, 'xb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_dir(folder)
        remove_stale_tmp_files(folder)

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Write the text ``obj`` to ``filepath`` atomically."""
        self.put(obj.encode(encoding), filepath)


def use_atomic_local_writes() -> None:
    """Make every mmengine write to a local path atomic (idempotent).

    Replaces the ``'local'`` backend and the one for paths without a
    prefix; backends built afterwards (the checkpoint hook builds its own
    at the start of training) are :class:`AtomicLocalBackend`.
    """
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` should load from ``work_dir``, or None.

    Candidates, in order: the file named by ``work_dir/last_checkpoint``
    (an empty or dangling pointer is skipped), then every ``epoch_N.pth``
    / ``iter_N.pth`` of ``work_dir``, newest first. The first one that is
    intact (not empty, not truncated, every stored CRC matching; see
    :func:`afd_mm.utils.checkpoint.verify_integrity`) is returned; each
    one skipped is logged with the reason. None when no intact checkpoint
    is left. Hidden ``*.tmp`` files left by a killed write are never
    picked.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if not (named and osp.isfile(named)):
            print_log(
                f'{pointer} names {named!r}, which is not a file (the run '
                'was killed while writing it); looking for the newest '
                'intact checkpoint instead.',
                logger='current', level=logging.WARNING)
            named = None
    candidates = ([named] if named else []) + [
        path for path in _checkpoints_newest_first(work_dir)
        if not (named and osp.samefile(path, named))]
    for path in candidates:
        try:
            verify_integrity(path, '--resume')
        except CorruptCheckpointError as err:
            print_log(f'--resume: skipped {path}: {err}',
                      logger='current', level=logging.WARNING)
            continue
        return path
    return None


def _checkpoints_newest_first(work_dir: str) -> List[str]:
    """The ``epoch_N.pth``/``iter_N.pth`` of ``work_dir``, newest first.

    Ordered by modification time, then by N (copies may share a time).
    """
    if not osp.isdir(work_dir):
        return []
    found = []
    for name in os.listdir(work_dir):
        match = _STEP.match(name)
        if match:
            mtime = os.stat(osp.join(work_dir, name)).st_mtime_ns
            found.append((mtime, int(match.group(2)), name))
    return [osp.join(work_dir, name) for *_, name in sorted(found)[::-1]]


def remove_stale_tmp_files(folder: str) -> List[str]:
    """Remove the ``*.tmp`` files of interrupted writes from ``folder``.

    A temporary file is stale when the process that wrote it (the pid in
    its name, ``.<name>.<pid>.<random>.tmp``) no longer runs on this
    machine; files of running processes, this one included, are kept.
    Returns the removed paths.
    """
    removed = []
    for name in os.listdir(folder):
        match = _TMP.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        try:
            os.remove(osp.join(folder, name))
        except FileNotFoundError:
            continue  # another process cleaned it first
        removed.append(osp.join(folder, name))
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def _tmp_name(name: str) -> str:
    return f'.{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}'


def _fsync_dir(folder: str) -> None:
    """Persist the rename itself (POSIX; a no-op where dirs can't open)."""
    if not hasattr(os, 'O_DIRECTORY'):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
