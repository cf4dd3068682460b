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
"""
import collections
import copyreg
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional
from urllib.parse import urlparse

import numpy as np
import torch
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


def load_from_local(filename: str, map_location=None) -> dict:
    """mmengine's loader of local files (``--resume``, ``load_from``)."""
    return load_checkpoint_file(filename, key='load_from` / `--resume')


def allow_mmengine_checkpoints() -> None:
    """Allow-list an mmengine training checkpoint's types (idempotent).

    Also routes mmengine's loading of local files (resume, ``load_from``)
    through :func:`load_checkpoint_file`, so a refused file gets our message.
    """
    torch.serialization.add_safe_globals(CHECKPOINT_SAFE_GLOBALS)
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local, force=True)


def load_checkpoint_file(path: str, key: str = 'teacher_ckpt') -> dict:
    """Load a user-provided checkpoint (local path or http(s) URL) safely.

    Args:
        path: local file or URL; URLs are downloaded once into torch hub's
            cache directory.
        key: the config key the path came from, named in error messages.

    Raises:
        FileNotFoundError: the local file does not exist.
        RuntimeError: the file holds objects outside the allow-list (e.g. a
            pickle crafted to run code); nothing from it is executed.
    """
    allow_mmengine_checkpoints()
    local = _download(path) if urlparse(path).scheme in ('http', 'https') \
        else osp.expanduser(path)
    if not osp.isfile(local):
        raise FileNotFoundError(
            f'Checkpoint {local!r} does not exist: fix `{key}` in your '
            'config (a local path or an http(s) URL).')
    try:
        return torch.load(local, map_location='cpu', weights_only=True)
    except Exception as err:  # pickle.UnpicklingError and friends
        raise RuntimeError(
            f'Refused to load {local!r} (`{key}`): it is not a plain '
            'weights checkpoint and was not unpickled, so none of its code '
            f'ran. Cause: {str(err).splitlines()[0]}') from err


def _download(url: str) -> str:
    """The cached copy of ``url`` in torch hub's checkpoint folder.

    A file of the URL's name already in that folder (e.g. copied there by
    hand on an offline machine) is used without any network access.
    """
    cache = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(cache, exist_ok=True)
    local = osp.join(cache, osp.basename(urlparse(url).path))
    if not osp.isfile(local):
        try:
            torch.hub.download_url_to_file(url, local, progress=False)
        except OSError as err:  # URLError, timeouts, DNS: all OSErrors
            raise OSError(
                f'Could not download {url} ({err}). Offline, download it '
                f'elsewhere and copy it to {local} (the cache folder '
                f'{cache}, where it is picked up), or point the config key '
                '(`teacher_ckpt`) at a local copy.') from err
    return local


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
