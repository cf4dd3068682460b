"""Safe checkpoint loading: ``weights_only`` with an explicit allow-list.

torch >= 2.6 loads with ``weights_only=True``, which refuses any pickled
class not allow-listed. mmengine's training checkpoints hold a few of its
own objects (the message hub's ``HistoryBuffer``), numpy arrays/scalars and
a ``Counter``, so resuming fails out of the box.
:data:`CHECKPOINT_SAFE_GLOBALS` lists exactly those types and
:func:`allow_mmengine_checkpoints` registers them.

A ``HistoryBuffer`` pickles its statistics methods through
``builtins.getattr``, which must never be allow-listed (it opens every
attribute of every allowed object). So we also register a reducer that
saves a buffer as ``HistoryBuffer(log, counts, max_length)`` with plain
lists: checkpoints written by afd_mm resume under ``weights_only=True``.
Nothing here ever turns ``weights_only`` off.

Beyond unpickling, a file is checked before it is used: the CRC of every
record (:func:`verify_integrity`), the hash prefix of a downloaded file's
name, and config text stored in a checkpoint is never executed (see
``docs/checkpoint_safety.md``).
"""
import collections
import copyreg
import hashlib
import logging
import os
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Dict, Optional
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

# numpy's pickling helpers moved from numpy.core to numpy._core in 2.0.
_np_core = getattr(np, '_core', None) or np.core

CHECKPOINT_SAFE_GLOBALS = [
    HistoryBuffer,
    collections.Counter,
    np.ndarray,
    np.dtype,
    _np_core.multiarray._reconstruct,
    _np_core.multiarray.scalar,
    *{type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32',
                                  'bool')},
]


def _reduce_history_buffer(buffer: HistoryBuffer):
    log, counts = buffer.data
    return HistoryBuffer, (log.tolist(), counts.tolist(), buffer.max_length)


def load_from_afd_mm(filename: str, map_location=None) -> dict:
    """mmengine's loader of local files and http(s) URLs (``--resume``,
    ``load_from``): :func:`load_checkpoint_file`, without config text."""
    return _without_config_text(
        load_checkpoint_file(filename, key='load_from` / `--resume'),
        filename)


def allow_mmengine_checkpoints() -> None:
    """Allow-list an mmengine training checkpoint's types (idempotent).

    Also routes mmengine's loading of local files and http(s) URLs
    (resume, ``load_from``) through :func:`load_checkpoint_file`, so a
    refused or corrupt file gets our message, a download is cached by its
    full URL and verified, and no config text stored in the checkpoint is
    handed to mmengine (its ``Runner.resume`` would execute it).
    """
    torch.serialization.add_safe_globals(CHECKPOINT_SAFE_GLOBALS)
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    CheckpointLoader.register_scheme(
        prefixes=['', 'http://', 'https://'], loader=load_from_afd_mm,
        force=True)


def load_checkpoint_file(path: str, key: str = 'teacher_ckpt') -> dict:
    """Load a user-provided checkpoint (local path or http(s) URL) safely.

    Args:
        path: local file or URL; URLs are downloaded once into torch hub's
            cache directory, keyed by the full URL (see
            :func:`download_checkpoint`).
        key: the config key the path came from, named in error messages.

    Raises:
        FileNotFoundError: the local file does not exist.
        CorruptCheckpointError: the file is empty, truncated, or a stored
            CRC does not match its bytes.
        RuntimeError: the file holds objects outside the allow-list (e.g. a
            pickle crafted to run code); nothing from it is executed.
    """
    allow_mmengine_checkpoints()
    local = download_checkpoint(path, key) \
        if urlparse(path).scheme in ('http', 'https') \
        else osp.expanduser(path)
    if not osp.isfile(local):
        raise FileNotFoundError(
            f'Checkpoint {local!r} does not exist: fix `{key}` in your '
            'config (a local path or an http(s) URL).')
    verify_integrity(local, key)
    try:
        return torch.load(local, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise RuntimeError(
            f'Refused to load {local!r} (`{key}`): it is not a plain '
            'weights checkpoint and was not unpickled, so none of its code '
            f'ran. Refused: {_refused_global(err)}. Point `{key}` at a '
            'checkpoint written by mmengine/mmpretrain/afd_mm.') from err
    except Exception as err:
        raise CorruptCheckpointError(
            f'Corrupt file {local!r} (`{key}`): it could not be read as a '
            f'checkpoint ({type(err).__name__}: {_first_line(err)}). '
            f'Point `{key}` at an intact copy.') from err


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is empty, truncated or fails its CRC check."""


def verify_integrity(path: str, key: str = 'load_from') -> None:
    """Check that ``path`` is a whole checkpoint before it is unpickled.

    torch's zip format stores a CRC-32 of every record, which ``torch.load``
    does not check: flipped bytes inside a tensor load silently. This reads
    every record and compares its CRC; an empty file, a zip cut short (no
    central directory) or a CRC mismatch raises
    :class:`CorruptCheckpointError` naming the file and ``key``. Files in
    torch's legacy (non-zip) format carry no CRC and are left to
    ``torch.load``.
    """
    with open(path, 'rb') as f:
        head = f.read(4)
    if not head:
        raise CorruptCheckpointError(
            f'Corrupt file {path!r} (`{key}`): it is empty (0 bytes), e.g. '
            f'a save that was interrupted. Point `{key}` at an intact copy.')
    if head != b'PK\x03\x04':
        return  # legacy pickle format or not a checkpoint: torch.load says
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise CorruptCheckpointError(
            f'Corrupt file {path!r} (`{key}`): it is truncated or not a '
            f'whole zip archive ({_first_line(err)}). Point `{key}` at an '
            'intact copy.') from err
    if bad is not None:
        raise CorruptCheckpointError(
            f'Corrupt file {path!r} (`{key}`): the CRC of its record '
            f'{bad!r} does not match its bytes (the file was damaged after '
            f'it was written). Point `{key}` at an intact copy.')


def cached_path(url: str) -> str:
    """Where ``download_checkpoint`` keeps (and looks for) ``url``'s file:
    ``<hub>/checkpoints/afd_mm/<sha256(url)[:16]>/<file name>``."""
    name = osp.basename(urlparse(url).path) or 'checkpoint.pth'
    url_key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return osp.join(torch.hub.get_dir(), 'checkpoints', 'afd_mm', url_key,
                    name)


def download_checkpoint(url: str, key: str = 'teacher_ckpt') -> str:
    """The local copy of ``url`` in torch hub's cache, downloaded once.

    Cached as ``<hub>/checkpoints/afd_mm/<sha256(url)[:16]>/<file name>``:
    two URLs with the same file name never share a copy. When the file
    name carries the OpenMMLab / torch.hub hash prefix
    (``name-<sha256 prefix>.pth``) the copy's SHA-256 must start with it,
    checked after the download and at every later use. Offline, a copy
    placed there by hand is used without any network access.

    Raises:
        RuntimeError: the hash prefix does not match (names file and URL);
            a mismatching fresh download is deleted.
    """
    local = cached_path(url)
    folder = osp.dirname(local)
    os.makedirs(folder, exist_ok=True)
    fresh = not osp.isfile(local)
    if fresh:
        try:
            torch.hub.download_url_to_file(url, local, progress=False)
        except OSError as err:  # URLError, timeouts, DNS: all OSErrors
            raise OSError(
                f'Could not download {url} ({err}). Offline, download it '
                f'elsewhere and copy it to {local} (the cache folder '
                f'{folder}, where it is picked up), or point the config '
                f'key `{key}` at a local copy.') from err
    _check_hash_prefix(local, url, key, delete=fresh)
    return local


def _check_hash_prefix(local: str, url: str, key: str, delete: bool):
    match = torch.hub.HASH_REGEX.search(osp.basename(local))
    if match is None or not match.group(1):
        return
    prefix = match.group(1)
    digest = hashlib.sha256()
    with open(local, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    if digest.hexdigest().startswith(prefix):
        return
    if delete:
        os.remove(local)
    raise RuntimeError(
        f'Hash mismatch: {local!r}, downloaded from {url}, has SHA-256 '
        f'{digest.hexdigest()[:len(prefix)]}..., but its name promises '
        f'{prefix}. ' + ('The download was deleted; the server sent other '
                         'bytes than the release. ' if delete else
                         'Delete the cached file to download it again. ')
        + f'Check the URL in `{key}`.')


def _refused_global(err: Exception) -> str:
    """The pickled global torch refused, from its message."""
    match = re.search(r'GLOBAL (\S+)', str(err))
    return f'the pickled global {match.group(1)}' if match \
        else _first_line(err)


def _first_line(err: Exception) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else repr(err)


def _without_config_text(checkpoint: dict, filename: str) -> dict:
    """Drop ``meta['config']``: mmengine's ``Runner.resume`` executes it.

    mmengine writes the config as ``meta['cfg']`` and never reads it back;
    it reads ``meta['config']`` (the name of older releases) only to build
    a ``Config``, i.e. to run that text as Python. No afd_mm or mmengine
    checkpoint needs it, so it never reaches the runner.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and 'config' in meta:
        meta.pop('config')
        print_log(
            f"{filename}: ignored meta['config'], config text stored in the "
            'checkpoint; it is never executed. The run uses the config '
            'file you passed.', logger='current', level=logging.WARNING)
    return checkpoint


def extract_state_dict(checkpoint: dict,
                       prefix: Optional[str] = None) -> Dict[str, object]:
    """The model weights of a checkpoint, without DDP's ``module.`` prefix.

    Args:
        checkpoint: a loaded checkpoint, either a bare state dict or a dict
            with ``state_dict`` (mmengine/mmpretrain) or ``model``.
        prefix: keep only keys under this prefix (e.g. ``'student.'``) and
            strip it.
    """
    state = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    out = OrderedDict()
    for name, value in state.items():
        name = name[len('module.'):] if name.startswith('module.') else name
        if prefix is not None:
            if not name.startswith(prefix):
                continue
            name = name[len(prefix):]
        out[name] = value
    return out
