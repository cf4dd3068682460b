"""Distributed launch on machines without CUDA (gloo, no device ids).

mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and its DDP
wrapper passes ``device_ids=[LOCAL_RANK]``; both fail on CPU. When CUDA is
absent we initialise the process group with gloo first (mmengine then
skips its own init) and ask the wrapper for ``device_ids=None``. With CUDA
present nothing changes: NCCL, as mmpretrain does it.
"""
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
        torch_dist.init_process_group(backend='gloo')
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
