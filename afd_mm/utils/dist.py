"""Distributed launch on machines without CUDA (gloo, no device ids).

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and its DDP
wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on CPU. When CUDA is
absent we initialise the process group with gloo first (mmengine then
skips its own init) and ask the wrapper for ``device_ids=None``. With CUDA
present nothing changes: NCCL, as mmpretrain does it.
"""
import contextlib
import datetime
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

ENV_KEYS = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def prepare_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Set up gloo + a CPU-friendly DDP wrapper; True when it did."""
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher == 'slurm':
        _slurm_env()
    elif launcher != 'pytorch':
        raise ValueError(
            f'--launcher {launcher} needs CUDA; on a machine without CUDA use '
            '--launcher pytorch (tools/dist_train.sh) or slurm.')
    missing = [k for k in ENV_KEYS if k not in os.environ]
    if missing:
        raise RuntimeError(
            f'--launcher pytorch but {missing} are not set: start with '
            'torchrun, e.g. `bash tools/dist_train.sh CONFIG 2`.')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo',
                                      timeout=dist_timeout(cfg))
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    wrapper = dict(type='MMDistributedDataParallel', broadcast_buffers=False,
                   find_unused_parameters=cfg.get('find_unused_parameters',
                                                  False))
    wrapper.update(cfg.get('model_wrapper_cfg') or {})
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    return True


def _slurm_env() -> None:
    """torchrun's variables from Slurm's, as mmengine's slurm launcher."""
    nodes = os.environ['SLURM_NODELIST']
    first = subprocess.getoutput(f'scontrol show hostname {nodes} | head -n1')
    os.environ.setdefault('MASTER_ADDR', first)
    os.environ.setdefault('MASTER_PORT', os.environ.get('PORT', '29500'))
    os.environ.setdefault('RANK', os.environ['SLURM_PROCID'])
    os.environ.setdefault('WORLD_SIZE', os.environ['SLURM_NTASKS'])
    os.environ.setdefault('LOCAL_RANK', os.environ['SLURM_LOCALID'])


def finish_distributed() -> None:
    """Wait for every rank, then tear the process group down cleanly.

    Exiting with a live gloo group can abort a rank at interpreter exit.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


DEFAULT_TIMEOUT_S = 1800  # torch's and mmengine's default: 30 minutes


def dist_timeout(cfg: Config) -> datetime.timedelta:
    """How long a rank waits for the others: ``env_cfg.dist_cfg.timeout``.

    In seconds, as mmengine reads it for NCCL; here it bounds every gloo
    collective too (default 1800 s), so a stopped or hung peer makes the
    other ranks fail after that long instead of hanging.
    """
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    seconds = dist_cfg.get('timeout', DEFAULT_TIMEOUT_S)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
            or seconds <= 0:
        raise ValueError(
            f'env_cfg.dist_cfg.timeout={seconds!r}: expected a positive '
            f'number of seconds (default {DEFAULT_TIMEOUT_S}); change '
            '`env_cfg.dist_cfg.timeout` in the config.')
    return datetime.timedelta(seconds=seconds)


@contextlib.contextmanager
def explain_dist_timeout(cfg: Config):
    """Re-raise a collective's timeout as a message that says what to do.

    A timeout means another rank did not reach the same collective within
    ``env_cfg.dist_cfg.timeout``: it stopped, crashed or hangs (or is
    legitimately slower, e.g. rank 0 saving a large checkpoint).
    """
    try:
        yield
    except RuntimeError as err:
        text = str(err)
        if not (torch_dist.is_available() and torch_dist.is_initialized()
                and ('Timed out' in text or 'timeout' in text.lower())):
            raise
        seconds = dist_timeout(cfg).total_seconds()
        raise RuntimeError(
            f'Rank {torch_dist.get_rank()} of '
            f'{torch_dist.get_world_size()}: no answer from another rank '
            f'within env_cfg.dist_cfg.timeout={seconds:g} s, so this rank '
            'stops instead of waiting forever. A peer stopped, crashed or '
            'hangs (see its log); if ranks legitimately wait longer, raise '
            '`env_cfg.dist_cfg.timeout` in the config. Cause: '
            f'{text.strip().splitlines()[0] if text.strip() else err!r}'
        ) from err
