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
import socket
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


def setup_launcher_env(launcher: str) -> None:
    """Before ``Runner.from_cfg``: torchrun's variables for ``launcher``.

    Under ``slurm`` (CPU and GPU alike) they come from Slurm's own, see
    :func:`_slurm_env`; other launchers set them themselves.
    """
    if launcher == 'slurm':
        _slurm_env()


def _slurm_env() -> None:
    """``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_*`` from Slurm.

    Rank, world size and local rank are always overwritten with
    ``SLURM_PROCID``, ``SLURM_NTASKS`` and ``SLURM_LOCALID``, as mmengine's
    slurm launcher does (a stale ``RANK=0 WORLD_SIZE=1`` exported in the
    shell reaches every task through srun and would split the job).
    ``MASTER_ADDR`` is kept when set, else the job's first node (as
    mmengine). The port: ``MASTER_PORT``, else ``PORT``, else one derived
    from the job and step ids (:func:`slurm_port`), checked free by rank 0.
    """
    missing = [k for k in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST',
                           'SLURM_JOB_ID') if k not in os.environ]
    if missing:
        raise RuntimeError(
            f'--launcher slurm but {missing} are not set: start the job '
            'with srun, e.g. `bash tools/slurm_train.sh PARTITION JOB '
            'CONFIG WORK_DIR`, or use --launcher none|pytorch.')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if 'MASTER_ADDR' not in os.environ:
        nodes = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {nodes} | head -n1')
    port = os.environ.get('MASTER_PORT') or os.environ.get('PORT')
    if not port:
        port = str(slurm_port(os.environ['SLURM_JOB_ID'],
                              os.environ.get('SLURM_STEP_ID', '0')))
    os.environ['MASTER_PORT'] = port
    if os.environ['RANK'] == '0':
        _check_port_free(int(port))


def slurm_port(job_id: str, step_id: str) -> int:
    """The rendezvous port of a Slurm job step: 20000-31999.

    Every task of the step computes the same port without talking to the
    others; two jobs (or two steps of one allocation) differ unless their
    ids are 12000 apart. Below Linux's ephemeral range (32768+).
    """
    step = int(step_id) if step_id.isdigit() else 0
    return 20000 + (int(job_id) * 7 + step) % 12000


def _check_port_free(port: int) -> None:
    """Rank 0 fails with what to set instead of torch's EADDRINUSE."""
    with socket.socket() as sock:
        # as torch's TCPStore: a port in TIME_WAIT is free to reuse
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(('', port))
        except OSError as err:
            raise RuntimeError(
                f'port {port} (MASTER_PORT) is taken on '
                f'{socket.gethostname()} ({err.strerror}): set MASTER_PORT '
                '(or PORT) to a free port before launching.') from err


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
