"""Throughput of 1 vs 2 training processes on this machine (CPU, gloo).

    python tools/benchmark_dist.py [--config tests/data/afd_tiny_cifar.py]
        [--batch 16] [--images 512] [--rounds 2] [--skip 3] [--threads 1]

Writes a CIFAR-100 fixture of ``--images`` training images
(tests/cifar_fixture.py) and trains one epoch of the config, without
validation, two ways:

* 1 process: ``tools/train.py``, batch ``--batch``;
* 2 processes: ``tools/dist_train.sh CONFIG 2`` (torchrun; gloo when CUDA
  is absent), batch ``--batch`` in each (weak scaling, as when a user adds
  a node).

Each process gets ``--threads`` intra-op threads (``OMP_NUM_THREADS``).
Throughput (images/s) = processes x batch / median iteration time, read
from rank 0's log (``time:`` of mmengine's IterTimerHook: data + forward +
backward with its gradient all-reduce + step), the first ``--skip``
iterations left out as warm-up. Process start-up is not counted. Rounds
alternate 1, 2, 1, 2, ... so that load from other processes hits both
alike. Printed: every round, both medians, and the ratio 2 / 1 (2.0 is
perfect scaling). A benchmark, never a test.
"""
import argparse
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TESTS = osp.join(REPO, 'tests')
sys.path.insert(0, REPO)
sys.path.insert(0, TESTS)
sys.path.insert(0, osp.join(REPO, 'tools'))

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

from cifar_fixture import write_cifar100  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

_ITER = re.compile(r'Epoch\(train\)\s+\[\d+\]\[\s*\d+/\d+\].*?\stime: '
                   r'([\d.]+)')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config',
                        default=osp.join(TESTS, 'data', 'afd_tiny_cifar.py'))
    parser.add_argument('--batch', type=int, default=16,
                        help='images per process and iteration')
    parser.add_argument('--images', type=int, default=512,
                        help='training images in the fixture (one epoch)')
    parser.add_argument('--rounds', type=int, default=2,
                        help='runs of each setting, interleaved')
    parser.add_argument('--skip', type=int, default=3,
                        help='warm-up iterations left out of the median')
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP_NUM_THREADS of every process')
    return parser.parse_args(argv)


def train_command(args, nproc, work_dir):
    """The command line of one run with ``nproc`` processes."""
    options = ['--work-dir', work_dir, '--no-validate', '--cfg-options',
               f'train_dataloader.batch_size={args.batch}',
               'train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
               'log_processor.window_size=1']
    if nproc == 1:
        return [sys.executable, osp.join(REPO, 'tools', 'train.py'),
                args.config, *options]
    return ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), args.config,
            str(nproc), *options]


def run_once(args, nproc, work_dir, env):
    """Images per second of one run (rank 0's median iteration)."""
    with open(f'{work_dir}.out', 'w') as out:
        done = subprocess.run(train_command(args, nproc, work_dir), env=env,
                              cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f'{nproc}-process run failed, see {work_dir}.out')
    times = iteration_times(work_dir)[args.skip:]
    if not times:
        raise RuntimeError(
            f'no timed iteration in {work_dir}: use more --images or a '
            'smaller --skip')
    return nproc * args.batch / statistics.median(times)


def iteration_times(work_dir):
    """Seconds per training iteration, from the run's rank-0 log."""
    log = next(Path(work_dir).glob('*/*.log'))
    return [float(m[1]) for m in _ITER.finditer(log.read_text())]


def main(argv=None):
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix='afd_benchmark_dist_')
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               PORT=os.environ.get('PORT', '29533'), PYTHON=sys.executable,
               AFD_TEST_DATA=write_cifar100(osp.join(tmp, 'data'),
                                            num_train=args.images),
               PYTHONPATH=os.pathsep.join([TESTS, REPO]))
    speed = {1: [], 2: []}
    for round_ in range(args.rounds):
        for nproc in (1, 2):
            work = osp.join(tmp, f'{nproc}proc_{round_}')
            speed[nproc].append(run_once(args, nproc, work, env))
            print_log(f'round {round_ + 1}: {nproc} process(es) '
                      f'{speed[nproc][-1]:.1f} img/s', logger='current')
    one, two = (statistics.median(speed[n]) for n in (1, 2))
    print_log(
        f'{args.config}, batch {args.batch} per process, {args.threads} '
        f'thread(s) each, {os.cpu_count()} CPUs: 1 process {one:.1f} img/s,'
        f' 2 processes {two:.1f} img/s, ratio 2/1 = {two / one:.2f} '
        f'(load average {os.getloadavg()[0]:.1f}; logs in {tmp})',
        logger='current')
    return two / one


if __name__ == '__main__':
    main()
