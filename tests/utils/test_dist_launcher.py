"""afd_mm.utils.dist: the slurm launcher's variables (rank handling).

The launch itself under a real Slurm: tests/tools/test_slurm_train.py.
"""
import os
import socket

import pytest

from afd_mm.utils.dist import setup_launcher_env, slurm_port

SLURM = dict(SLURM_PROCID='1', SLURM_NTASKS='4', SLURM_LOCALID='1',
             SLURM_NODELIST='127.0.0.1', SLURM_JOB_ID='4242',
             SLURM_STEP_ID='0')
KEYS = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
        'PORT')


@pytest.fixture
def slurm_task(monkeypatch):
    """Task 1 of 4 with a stale ``RANK=0 WORLD_SIZE=1 LOCAL_RANK=0``."""
    for key in KEYS:  # recorded, so what the code sets is undone after
        monkeypatch.setenv(key, '')
        monkeypatch.delenv(key)
    for key, value in dict(SLURM, RANK='0', WORLD_SIZE='1',
                           LOCAL_RANK='0').items():
        monkeypatch.setenv(key, value)


def test_slurm_variables_win_over_stale_ones(slurm_task):
    setup_launcher_env('slurm')
    assert [os.environ[k] for k in KEYS[:3]] == ['1', '4', '1']
    assert os.environ['MASTER_PORT'] == str(slurm_port('4242', '0'))


def test_other_launchers_leave_the_environment(slurm_task):
    setup_launcher_env('pytorch')
    assert [os.environ[k] for k in KEYS[:3]] == ['0', '1', '0']
    assert 'MASTER_PORT' not in os.environ


def test_master_port_then_port_then_the_job(slurm_task, monkeypatch):
    monkeypatch.setenv('PORT', '29511')
    setup_launcher_env('slurm')
    assert os.environ['MASTER_PORT'] == '29511'
    monkeypatch.setenv('MASTER_PORT', '29600')
    setup_launcher_env('slurm')
    assert os.environ['MASTER_PORT'] == '29600'


def test_job_ports_differ_and_stay_below_ephemeral():
    ports = {slurm_port(str(job), step)
             for job in range(1000, 1100) for step in ('0', '1')}
    assert len(ports) == 200
    assert 20000 <= min(ports) and max(ports) < 32000
    assert slurm_port('7', 'batch') == slurm_port('7', '0')


def test_rank_0_says_which_port_is_taken(slurm_task, monkeypatch):
    monkeypatch.setenv('SLURM_PROCID', '0')
    with socket.socket() as taken:
        taken.bind(('', 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv('MASTER_PORT', str(port))
        with pytest.raises(RuntimeError, match=(
                f'port {port} \\(MASTER_PORT\\) is taken on .*: set '
                'MASTER_PORT \\(or PORT\\) to a free port')):
            setup_launcher_env('slurm')


def test_outside_srun_says_how_to_start(slurm_task, monkeypatch):
    monkeypatch.delenv('SLURM_PROCID')
    with pytest.raises(RuntimeError, match=(
            r"--launcher slurm but \['SLURM_PROCID'.*start the job with "
            'srun, e.g. `bash tools/slurm_train.sh')):
        setup_launcher_env('slurm')
