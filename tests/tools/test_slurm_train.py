"""tools/slurm_train.sh and tools/slurm_test.sh against a real Slurm.

The module's fixture starts Debian's Slurm on this machine (munged,
slurmctld, two slurmd: ``tests/slurm_cluster.py``; installed with apt-get
when absent; the tests FAIL with the reason when it cannot be) and stops
it afterwards. Each shell starts with a stale ``RANK=0 WORLD_SIZE=1
LOCAL_RANK=0`` exported, as a user's shell may have, and the environment
of the test's Python active (its bin first on PATH, no PYTHON set).

The tiny config with 32 training images: 2 tasks x batch 4 is 4
iterations per epoch, 8 in all, a checkpoint every 3 iterations:

* 2 tasks on one node, to the end (the reference), then
  ``slurm_test.sh`` with 2 tasks and ``--out``;
* 2 tasks frozen after iteration 7 (the test-only hook below), ended with
  ``scancel``, then ``--resume`` with ``slurm_train.sh``: bit-identical
  to the reference;
* 2 tasks on 2 nodes (one each) through ``sbatch``: bit-identical to the
  reference.
"""
import json
import os
import os.path as osp
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cifar_fixture import write_cifar100
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from slurm_cluster import CPUS, NODES, PARTITION, SlurmCluster, SlurmError

from afd_mm.utils.checkpoint import load_checkpoint_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(REPO, 'tools')
TINY_CFG = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')
FREEZE_AFTER = 7
STALE = dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0')

RUN_CFG = f'''_base_ = {TINY_CFG!r}
custom_imports = dict(
    imports=['afd_mm', 'cifar_fixture', 'test_slurm_train'])
randomness = dict(seed=0, deterministic=True)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=3))
'''
FREEZE_CFG = '''_base_ = './run.py'
custom_hooks = [dict(type='FreezeRanksAfterIterForTests', iters={iters},
                     marker={marker!r})]
'''


@HOOKS.register_module(force=True)
class FreezeRanksAfterIterForTests(Hook):
    """Test only: after ``iters`` iterations (and their checkpoint) each
    rank writes ``marker.RANK`` and sleeps until the job is cancelled."""

    priority = 'LOWEST'  # after CheckpointHook

    def __init__(self, iters, marker):
        self.iters = iters
        self.marker = marker

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        """Freeze once ``runner.iter + 1 == iters``."""
        if runner.iter + 1 == self.iters:
            Path(f'{self.marker}.{runner.rank}').write_text(
                os.environ['LOCAL_RANK'])
            time.sleep(600)


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
    """A running Slurm; FAILS (never skips) when it cannot be had."""
    try:
        slurm = SlurmCluster(tmp_path_factory.mktemp('slurm')).start()
    except SlurmError as err:
        pytest.fail(f'no Slurm for the Slurm tests: {err}')
    yield slurm
    slurm.stop()


@pytest.fixture(scope='module')
def tiny(tmp_path_factory, cluster):
    """Configs, data, the shell's environment and the reference run."""
    tmp = tmp_path_factory.mktemp('runs')
    (tmp / 'run.py').write_text(RUN_CFG)
    (tmp / 'freeze.py').write_text(FREEZE_CFG.format(
        iters=FREEZE_AFTER, marker=str(tmp / 'frozen')))
    tests = osp.join(REPO, 'tests')
    env = dict(
        cluster.env, **STALE,
        AFD_TEST_DATA=write_cifar100(str(tmp / 'data'), num_train=32),
        PATH=os.pathsep.join([osp.dirname(sys.executable),
                              os.environ['PATH']]),
        PYTHONPATH=os.pathsep.join([osp.join(tests, 'tools'), tests]))
    for key in ('PYTHON', 'OMP_NUM_THREADS', 'MASTER_PORT', 'PORT',
                'VIRTUAL_ENV', 'CONDA_PREFIX'):
        env.pop(key, None)
    _finish(_slurm_train(env, tmp / 'run.py', tmp / 'ref', TASKS='2'),
            tmp / 'ref', cluster)
    return tmp, env


def test_launcher_env_comes_from_slurm_on_two_nodes(cluster, tiny):
    """One task per node: local ranks 0 and 0, the first node's address.

    Local rank 1 on one node: the scancel test's markers."""
    _, env = tiny
    code = ('import os; from afd_mm.utils.dist import setup_launcher_env; '
            "setup_launcher_env('slurm'); print(*(os.environ[k] for k in "
            "('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', "
            "'MASTER_PORT')))")
    out = subprocess.run(
        ['srun', '-p', PARTITION, '-n2', '--ntasks-per-node=1', '-c1',
         sys.executable, '-c', code], env=dict(env, PYTHONPATH=REPO),
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + cluster.logs()
    rows = sorted(line.split() for line in out.stdout.splitlines())
    assert [r[:4] for r in rows] == [['0', '2', '0', NODES[0]],
                                     ['1', '2', '0', NODES[0]]]
    assert len({r[4] for r in rows}) == 1  # one port for all tasks


def test_train_then_test_two_tasks(cluster, tiny):
    tmp, env = tiny
    ref = tmp / 'ref'
    assert (ref / 'iter_8.pth').is_file()
    log = (tmp / 'ref.log').read_text()
    assert '--ntasks=2' in log and 'gres' not in log
    out = tmp / 'metrics.json'
    test = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_test.sh'), PARTITION, 'afd_test',
         str(tmp / 'run.py'), str(ref / 'iter_8.pth'), '--work-dir',
         str(tmp / 'test'), '--out', str(out)],
        env=dict(env, TASKS='2'), cwd=REPO, capture_output=True, text=True,
        timeout=300)
    assert test.returncode == 0, test.stderr[-3000:] + cluster.logs()
    assert 0.0 <= json.loads(out.read_text())['accuracy/top1'] <= 100.0


def test_scancel_mid_run_then_resume_is_bit_identical(cluster, tiny):
    tmp, env = tiny
    work = tmp / 'cancelled'
    proc = _slurm_train(env, tmp / 'freeze.py', work, TASKS='2',
                        job='afd_cancel')
    markers = [tmp / f'frozen.{rank}' for rank in (0, 1)]
    end = time.monotonic() + 300
    while not all(m.exists() for m in markers):
        assert proc.poll() is None and time.monotonic() < end, _tail(work)
        time.sleep(0.1)
    # each task's LOCAL_RANK is its SLURM_LOCALID despite the stale one
    assert [m.read_text() for m in markers] == ['0', '1']
    job = cluster.run('squeue', '-h', '-n', 'afd_cancel', '-o', '%i').split()
    assert len(job) == 1
    cluster.run('scancel', job[0])
    assert proc.wait(timeout=120) != 0
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_6.pth')
    assert not (work / 'iter_8.pth').exists()
    _finish(_slurm_train(env, tmp / 'run.py', work, '--resume', TASKS='2'),
            work, cluster)
    _assert_bit_identical(tmp / 'ref' / 'iter_8.pth', work / 'iter_8.pth')


def test_sbatch_on_two_nodes_equals_one_node(cluster, tiny):
    """The README's sbatch usage: sizes from the allocation."""
    tmp, env = tiny
    work = tmp / 'two_nodes'
    # 1 core each as in the reference: a thread count changes the sums
    batch = subprocess.run(
        ['sbatch', '-p', PARTITION, '-N2', '--ntasks-per-node=1', '-c1',
         '--wait', '-o', f'{work}.log', '--wrap',
         f'bash {TOOLS}/slurm_train.sh {PARTITION} afd_sbatch run.py '
         f'{work}'], env=env, cwd=tmp, capture_output=True, text=True,
        timeout=300)
    assert batch.returncode == 0, _tail(work) + cluster.logs()
    log = Path(f'{work}.log').read_text()
    assert '--ntasks-per-node=1 --ntasks=2 --cpus-per-task=1' in log
    _assert_bit_identical(tmp / 'ref' / 'iter_8.pth', work / 'iter_8.pth')


@pytest.mark.parametrize('request_env, message', [
    (dict(TASKS='3', TASKS_PER_NODE='1'),
     "3 tasks at 1 per node need 3 nodes; partition 'cpu' has 2"),
    (dict(CPUS_PER_TASK='3'),
     f"1 tasks per node x CPUS_PER_TASK=3 cores exceed the {CPUS} CPUs"),
    (dict(PARTITION='gpu'), "partition 'gpu' does not exist; partitions: "
     f'{PARTITION}'),
    (dict(PYTHON='/bin/false'), '/bin/false cannot import mmengine and '
     'mmpretrain: activate the environment'),
])
def test_requests_that_can_never_run_fail_at_once(cluster, tiny, tmp_path,
                                                  request_env, message):
    _, env = tiny
    partition = request_env.pop('PARTITION', PARTITION)
    out = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_train.sh'), partition, 'never',
         'cfg.py', str(tmp_path)], env=dict(env, **request_env),
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr
    assert cluster.run('squeue', '-h', '-n', 'never') == ''


# -- the GPU command line, with a stand-in sinfo and srun ------------------
SINFO = '''#!/usr/bin/env bash
case "$*" in
  *%P*) echo gpu ;;
  *) echo "4 64 gpu:a100:8(S:0-1)" ;;
esac
'''


@pytest.mark.parametrize('gpus, gres', [
    (dict(GPUS='16'), '--gres=gpu:8 --ntasks-per-node=8'),
    (dict(GPUS='4', GPUS_PER_NODE='2'), '--gres=gpu:2 --ntasks-per-node=2'),
    (dict(GPUS='0', TASKS='2'), None),
])
def test_gpu_partition_command_line(tmp_path, gpus, gres):
    for name, text in (('sinfo', SINFO),
                       ('srun', '#!/usr/bin/env bash\necho "$*"\n'
                                'echo "OMP=$OMP_NUM_THREADS '
                                'PORT=$MASTER_PORT"\n')):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    env = dict(os.environ, **gpus, PORT='29512', PYTHON=sys.executable,
               PATH=os.pathsep.join([str(tmp_path), os.environ['PATH']]))
    for key in ('OMP_NUM_THREADS', 'MASTER_PORT', 'CPUS_PER_TASK'):
        env.pop(key, None)
    train = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_train.sh'), 'gpu', 'job', 'cfg.py',
         'work', '--amp'], env=env, capture_output=True, text=True,
        check=True).stdout.splitlines()
    test = subprocess.run(
        ['bash', osp.join(TOOLS, 'slurm_test.sh'), 'gpu', 'job', 'cfg.py',
         'ckpt.pth', '--out', 'm.json'], env=env, capture_output=True,
        text=True, check=True).stdout.splitlines()
    for out in (train, test):
        assert out[0].startswith('-p gpu --job-name=job ')
        if gres is None:  # GPUS=0: CPU tasks, all the node's cores
            assert 'gres' not in out[0] and '--ntasks=2 ' in out[0]
            assert '--cpus-per-task=32 ' in out[0]
            assert out[1] == 'OMP=32 PORT=29512'
        else:
            per_node = int(gres.split('=')[-1])
            assert f'{gres} --ntasks={gpus["GPUS"]} ' in out[0]
            assert f'--cpus-per-task={min(5, 64 // per_node)} ' in out[0]
        assert f'{sys.executable} -u ' in out[0]
    assert train[0].endswith(
        f'{osp.join(TOOLS, "train.py")} cfg.py --work-dir=work '
        '--launcher=slurm --amp')
    assert test[0].endswith(
        f'{osp.join(TOOLS, "test.py")} cfg.py ckpt.pth --launcher=slurm '
        '--out m.json')


def _slurm_train(env, cfg, work, *args, job='afd_train', **request):
    """Start tools/slurm_train.sh; its output goes to ``work``.log."""
    log = open(f'{work}.log', 'w')
    with log:
        return subprocess.Popen(
            ['bash', osp.join(TOOLS, 'slurm_train.sh'), PARTITION, job,
             str(cfg), str(work), *args], env=dict(env, **request), cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT)


def _finish(proc, work, cluster, timeout=300):
    if proc.wait(timeout=timeout) != 0:
        raise AssertionError(_tail(work) + cluster.logs())


def _tail(work):
    return Path(f'{work}.log').read_text()[-3000:]


def _assert_bit_identical(expected_path, path):
    expected = load_checkpoint_file(str(expected_path), 'load_from')
    got = load_checkpoint_file(str(path), 'load_from')
    assert got['meta']['iter'] == expected['meta']['iter'] == 8
    weights = expected['state_dict']
    assert any(k.startswith('distill_loss.') for k in weights)
    assert sorted(got['state_dict']) == sorted(weights)
    differ = [k for k in weights
              if not torch.equal(weights[k], got['state_dict'][k])]
    assert differ == [], f'{len(differ)} tensors differ, e.g. {differ[:4]}'
