"""A stopped peer makes the other rank fail within the configured timeout.

Two gloo ranks on this machine, set up by ``prepare_cpu_distributed`` with
``env_cfg.dist_cfg.timeout`` = 8 s; once both passed a barrier, rank 1 is
stopped (SIGSTOP) and rank 0 enters an all-reduce. Rank 0 must exit with
afd_mm's message within the timeout plus a margin (start-up of the error
path), not after torch's default 30 minutes.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from mmengine.config import Config

from afd_mm.utils.dist import dist_timeout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TIMEOUT_S, MARGIN_S = 8, 20

RANK = '''
import sys, time
import torch
import torch.distributed as dist
from mmengine.config import Config
from afd_mm.utils.dist import explain_dist_timeout, prepare_cpu_distributed
cfg = Config(dict(env_cfg=dict(dist_cfg=dict(timeout=float(sys.argv[1])))))
prepare_cpu_distributed(cfg, 'pytorch')
dist.barrier()
if dist.get_rank() == 1:
    open(sys.argv[2], 'w').close()
    time.sleep(600)
with explain_dist_timeout(cfg):
    dist.all_reduce(torch.ones(1))
'''


def test_stopped_peer_fails_the_other_rank_within_the_timeout(tmp_path):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    marker = tmp_path / 'rank1_ready'
    procs = []
    for rank in (0, 1):
        env = dict(os.environ, OMP_NUM_THREADS='1', RANK=str(rank),
                   LOCAL_RANK=str(rank), WORLD_SIZE='2',
                   MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                   PYTHONPATH=os.pathsep.join(
                       [REPO] + os.environ.get('PYTHONPATH', '').split(
                           os.pathsep)))
        procs.append(subprocess.Popen(
            [sys.executable, '-c', RANK, str(TIMEOUT_S), str(marker)],
            env=env, cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    try:
        end = time.monotonic() + 120
        while not marker.exists():
            assert time.monotonic() < end and procs[0].poll() is None, \
                procs[0].stdout.read() if procs[0].poll() is not None else ''
            time.sleep(0.05)
        os.kill(procs[1].pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            output, _ = procs[0].communicate(timeout=TIMEOUT_S + MARGIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f'rank 0 still waits {TIMEOUT_S + MARGIN_S} s after '
                        f'its peer stopped (timeout {TIMEOUT_S} s)')
        took = time.monotonic() - stopped
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert procs[0].returncode != 0
    assert TIMEOUT_S - 1 <= took <= TIMEOUT_S + MARGIN_S
    assert (f'RuntimeError: Rank 0 of 2: no answer from another rank within '
            f'env_cfg.dist_cfg.timeout={TIMEOUT_S} s') in output, output
    assert 'raise `env_cfg.dist_cfg.timeout` in the config' in output


@pytest.mark.parametrize('value', [0, -5, '30', True])
def test_invalid_timeout_names_the_key(value):
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(timeout=value))))
    with pytest.raises(ValueError, match=r'env_cfg\.dist_cfg\.timeout='):
        dist_timeout(cfg)
    assert dist_timeout(Config(dict())).total_seconds() == 1800
