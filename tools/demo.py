"""The whole AFD job on Fashion-MNIST, sized for a laptop CPU (`make demo`).

Trains a teacher (CIFAR ResNet-20) on 20,000 Fashion-MNIST images, then
three ResNet-8 students on a low-data subset of 5,000 images: alone (CE),
with Hinton KD, and with AFD (+KD, the release's recipe). Prints progress
with an ETA, a markdown table of top-1 on the 10,000 test images, and where
the AFD link heatmap was written. About 7-8 minutes on 2 CPU cores with
torch's default threads (README); ``--fast`` (or ``FAST=1``) is a smaller
smoke run of about a minute::

    python tools/demo.py [--fast] [--data-root DIR] [--work-dir DIR]
    FAST=1 make demo

Data: the four gzipped IDX files of Fashion-MNIST in ``--data-root``
(default ``/usr/share/datasets/fashion-mnist``). When they are absent there
and this runs as root, it installs the Debian package
``dataset-fashion-mnist`` with apt-get; otherwise it stops and says how to
get them. The configs are ``configs/demo/*.py``; each run is
``tools/train.py`` then ``tools/test.py`` on one of them, in this process.
"""
import argparse
import glob
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
import uuid
from typing import Dict, List, Optional

TOOLS = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TOOLS)
sys.path[:0] = [REPO, TOOLS]

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

import test as test_tool  # noqa: E402
import train as train_tool  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import afd_mm  # noqa: E402,F401
import afd_mm.datasets.fashion_mnist as fmnist  # noqa: E402  (registers)
from afd_mm.utils.checkpoint import allow_mmengine_checkpoints  # noqa: E402

CONFIGS = osp.join(REPO, 'configs', 'demo')
TEACHER = 'teacher_resnet20_fmnist.py'
# (key, config, row label); the teacher comes first
STUDENTS = [
    ('alone', 'student_alone_resnet8_fmnist.py', 'ResNet-8 alone (CE)'),
    ('kd', 'kd_resnet20_resnet8_fmnist.py', 'ResNet-8 + KD'),
    ('afd', 'afd_resnet20_resnet8_fmnist.py', 'ResNet-8 + AFD (+KD)'),
]
SIZES = {  # images x epochs of the teacher and of each student
    'default': dict(teacher_images=20000, teacher_epochs=4,
                    student_images=5000, student_epochs=15),
    'fast': dict(teacher_images=5000, teacher_epochs=2,
                 student_images=2000, student_epochs=4),
}
# seconds per image relative to ResNet-20 training (about 2.6 ms on 2 CPU
# cores), measured with these configs; only their ratios matter: they
# spread the ETA over the stages
COST = dict(teacher=1.0, alone=0.4, kd=0.55, afd=0.7, test=0.15)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Teacher + students (alone, KD, AFD) on Fashion-MNIST')
    parser.add_argument('--fast', action='store_true',
                        default=os.environ.get('FAST', '') not in ('', '0'),
                        help='the smoke-test size (also FAST=1)')
    parser.add_argument('--data-root', default=fmnist.DEBIAN_ROOT,
                        help='folder of the 4 gzipped IDX files')
    parser.add_argument('--work-dir', help='default: work_dirs/demo '
                        '(work_dirs/demo_fast with --fast)')
    for key in SIZES['default']:
        parser.add_argument('--' + key.replace('_', '-'), type=int,
                            help=f'override the preset\'s {key}')
    parser.add_argument('--test-images', type=int, help='evaluate on the '
                        'first N test images only (default: all 10,000)')
    args = parser.parse_args(argv)
    sizes = dict(SIZES['fast' if args.fast else 'default'])
    sizes.update({k: getattr(args, k) for k in sizes
                  if getattr(args, k) is not None})
    args.sizes = sizes
    args.work_dir = args.work_dir or osp.join(
        'work_dirs', 'demo_fast' if args.fast else 'demo')
    return args


# ------------------------------------------------------------------ data
def ensure_data(root: str) -> None:
    """Make sure the four files are in ``root``, installing them if we can.

    Raises:
        SystemExit: they are absent and cannot be installed from here.
    """
    if not missing_files(root):
        return
    can_install = (osp.abspath(root) == fmnist.DEBIAN_ROOT
                   and shutil.which('apt-get') and os.geteuid() == 0)
    if can_install:
        say(f'Fashion-MNIST not in {root}: installing the Debian package '
            'dataset-fashion-mnist (apt-get) ...')
        apt_install('dataset-fashion-mnist')
    missing = missing_files(root)
    if missing:
        raise SystemExit(
            f'Fashion-MNIST files missing in {root}: {", ".join(missing)}. '
            + fmnist.HOW_TO_GET)


def missing_files(root: str) -> List[str]:
    """The gzipped IDX files absent from ``root`` (uncompressed ones do)."""
    names = [n for pair in fmnist.FashionMNIST.FILES.values() for n in pair]
    return [n + '.gz' for n in names
            if not (osp.isfile(osp.join(root, n + '.gz'))
                    or osp.isfile(osp.join(root, n)))]


def apt_install(package: str) -> None:
    """``apt-get install -y package``, after ``apt-get update`` if needed."""
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    cmd = ['apt-get', 'install', '-y', '-q', package]
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(['apt-get', 'update', '-q'], env=env, check=False)
        subprocess.run(cmd, env=env, check=False)


# -------------------------------------------------------------- progress
def say(msg: str) -> None:
    """One line of the demo's own output (the runs log warnings only)."""
    print(msg, flush=True)


def clock(seconds: float) -> str:
    """Seconds as m:ss."""
    seconds = int(round(seconds))
    return f'{seconds // 60}:{seconds % 60:02d}'


class Progress:
    """Elapsed time and an ETA over the stages of one demo.

    Each stage is worth ``images * cost`` units of work (see ``COST``);
    the ETA is the remaining units at the speed measured so far.

    Args:
        plan (dict[str, float]): units of work of every stage, in order.
    """

    def __init__(self, plan: Dict[str, float]) -> None:
        self.plan = dict(plan)
        self.done: Dict[str, float] = {k: 0.0 for k in plan}
        self.start = time.time()

    def advance(self, stage: str, fraction: float) -> None:
        """Mark ``fraction`` (0-1) of ``stage`` as done."""
        self.done[stage] = self.plan[stage] * min(max(fraction, 0.0), 1.0)

    def eta(self) -> Optional[float]:
        """Seconds left, or None before any work was measured."""
        done = sum(self.done.values())
        if done <= 0:
            return None
        left = sum(self.plan.values()) - done
        return (time.time() - self.start) * left / done

    def status(self) -> str:
        eta = self.eta()
        return (f'elapsed {clock(time.time() - self.start)}, ETA '
                + ('?' if eta is None else clock(eta)))


class ProgressHook(Hook):
    """Prints a progress line at each epoch end and every ``every`` s.

    Args:
        progress (Progress): the ETA of the whole job.
        stage (str): this training's stage in ``progress``.
        every (float): seconds between lines inside an epoch.
        per_epoch (bool): also print at every epoch end.
    """

    priority = 'VERY_LOW'

    def __init__(self, progress: Progress, stage: str, every: float = 30.0,
                 per_epoch: bool = True) -> None:
        self.progress, self.stage = progress, stage
        self.every, self.per_epoch = every, per_epoch
        self._last = time.time()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        """Advance the ETA; print when an epoch ends or time has passed."""
        self.progress.advance(self.stage, (runner.iter + 1) / runner.max_iters)
        epoch_end = batch_idx + 1 == len(runner.train_dataloader)
        if not (epoch_end and self.per_epoch) and \
                time.time() - self._last < self.every:
            return
        self._last = time.time()
        loss = (outputs or {}).get('loss', float('nan'))
        if hasattr(loss, 'detach'):  # a tensor of the step, in the graph
            loss = loss.detach()
        loss = float(loss)
        say(f'  [{self.stage}] epoch {runner.epoch + 1}/{runner.max_epochs} '
            f'iter {batch_idx + 1}/{len(runner.train_dataloader)}  '
            f'loss {loss:.3f}  | {self.progress.status()}')


# ------------------------------------------------------------------ runs
def overrides(data_root: str, images: int, epochs: int,
              test_images: Optional[int] = None, **extra) -> dict:
    """Config keys of one run: data, subset size and schedule length."""
    opts = {
        'train_dataloader.dataset.data_root': data_root,
        'train_dataloader.dataset.num_samples': images,
        'test_dataloader.dataset.data_root': data_root,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': epochs,
        'param_scheduler.T_max': epochs,
        'log_level': 'WARNING',
        'default_hooks.logger.interval': 10 ** 6,
    }
    if test_images is not None:
        opts['test_dataloader.dataset.indices'] = test_images
    opts.update(extra)
    return opts


def train(config: str, work_dir: str, opts: dict,
          hooks: List[Hook] = ()) -> str:
    """``tools/train.py`` (no validation) plus ``hooks``; the last ckpt."""
    args = train_tool.parse_args([config, '--work-dir', work_dir,
                                  '--no-validate'])
    cfg = train_tool.merge_args(Config.fromfile(config), args)
    cfg.merge_from_dict(opts)
    cfg.experiment_name = f'train_{uuid.uuid4().hex[:8]}'
    allow_mmengine_checkpoints()
    runner = Runner.from_cfg(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test(config: str, ckpt: str, work_dir: str, opts: dict) -> float:
    """``tools/test.py``: top-1 (%) of ``ckpt`` on the test split."""
    opts = dict(opts, experiment_name=f'test_{uuid.uuid4().hex[:8]}')
    argv = [config, ckpt, '--work-dir', work_dir, '--cfg-options']
    argv += [f'{k}={v}' for k, v in opts.items()]
    return float(test_tool.main(argv)['accuracy/top1'])


def run_stage(progress: Progress, key: str, config: str, work_dir: str,
              opts: dict, per_epoch: bool = True) -> dict:
    """Train and test one config; its result row (top1, ckpt, seconds)."""
    start = time.time()
    hook = ProgressHook(progress, key, per_epoch=per_epoch,
                        every=30.0 if per_epoch else 60.0)
    ckpt = train(config, work_dir, opts, [hook])
    if per_epoch:
        say(f'  [{key}] testing ...')
    top1 = test(config, ckpt, work_dir, opts)
    progress.advance(key, 1.0)
    return dict(top1=top1, ckpt=ckpt, seconds=time.time() - start)


def num_test_images(data_root: str, limit: Optional[int] = None) -> int:
    """Images of the test split (from the labels file's header)."""
    path = osp.join(data_root, fmnist.FashionMNIST.FILES['test'][1])
    path = path + '.gz' if osp.isfile(path + '.gz') else path
    total = len(fmnist.read_idx(path, fmnist.LABELS_MAGIC))
    return total if limit is None else min(limit, total)


# ---------------------------------------------------------------- report
def results_table(rows: List[dict], num_test: int) -> str:
    """Markdown table: one row per trained model."""
    lines = [f'| model | train images | epochs | top-1 (%, {num_test:,} test '
             'images) | time |', '|---|---:|---:|---:|---:|']
    for r in rows:
        lines.append(f'| {r["label"]} | {r["images"]:,} | {r["epochs"]} '
                     f'| {r["top1"]:.2f} | {clock(r["seconds"])} |')
    return '\n'.join(lines)


def heatmaps(work_dir: str) -> List[str]:
    """The link heatmaps of an AFD run: the last epoch's and the strip."""
    epochs = glob.glob(osp.join(work_dir, '*', 'vis_data', 'vis_image',
                                'link_matrix_*.png'))
    last = sorted(epochs, key=lambda p: int(re.findall(r'(\d+)\.png$',
                                                       p)[0]))[-1:]
    strip = glob.glob(osp.join(work_dir, 'links', 'links_strip.png'))
    return last + strip


def plan_of(sizes: dict, num_test: int) -> Dict[str, float]:
    """Units of work of the stages (for the ETA)."""
    plan = {'teacher': COST['teacher'] * sizes['teacher_images']
            * sizes['teacher_epochs'] + COST['test'] * num_test}
    for key, _, _ in STUDENTS:
        plan[key] = (COST[key] * sizes['student_images']
                     * sizes['student_epochs'] + COST['test'] * num_test)
    return plan


def train_teacher(progress: Progress, args, per_epoch: bool = True) -> dict:
    """Train and test the teacher config at ``args.sizes``."""
    s = args.sizes
    opts = overrides(args.data_root, s['teacher_images'],
                     s['teacher_epochs'], args.test_images)
    row = run_stage(progress, 'teacher', osp.join(CONFIGS, TEACHER),
                    osp.join(args.work_dir, 'teacher'), opts, per_epoch)
    return dict(row, label='ResNet-20 teacher', images=s['teacher_images'],
                epochs=s['teacher_epochs'])


def student_options(args, config: str, teacher_ckpt: str,
                    seed: Optional[int] = None) -> dict:
    """Overrides of a student run (CRD's bank size follows the subset)."""
    s = args.sizes
    extra = {} if seed is None else {'randomness.seed': seed}
    if 'alone' not in config:
        extra['model.teacher_ckpt'] = teacher_ckpt
    if config.startswith('crd_'):
        extra['model.distill_loss.num_data'] = s['student_images']
    return overrides(args.data_root, s['student_images'],
                     s['student_epochs'], args.test_images, **extra)


def run_demo(args) -> List[dict]:
    """Teacher, then the students; returns the table's rows."""
    s, steps = args.sizes, 1 + len(STUDENTS)
    progress = Progress(plan_of(s, args.num_test))
    say(f'[1/{steps}] teacher ResNet-20: {s["teacher_images"]:,} images x '
        f'{s["teacher_epochs"]} epochs')
    rows = [train_teacher(progress, args)]
    say(f'  teacher top-1 {rows[0]["top1"]:.2f} | {progress.status()}')
    for i, (key, config, label) in enumerate(STUDENTS, 2):
        say(f'[{i}/{steps}] {label}: {s["student_images"]:,} images x '
            f'{s["student_epochs"]} epochs')
        work_dir = osp.join(args.work_dir, key)
        row = run_stage(progress, key, osp.join(CONFIGS, config), work_dir,
                        student_options(args, config, rows[0]['ckpt']))
        rows.append(dict(row, label=label, images=s['student_images'],
                         epochs=s['student_epochs'], work_dir=work_dir))
        say(f'  {label} top-1 {row["top1"]:.2f} | {progress.status()}')
    return rows


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    start = time.time()
    ensure_data(args.data_root)
    args.num_test = num_test_images(args.data_root, args.test_images)
    say(f'AFD demo on Fashion-MNIST ({"fast" if args.fast else "default"} '
        f'size), work dir {args.work_dir}')
    rows = run_demo(args)
    say('\n' + results_table(rows, args.num_test) + '\n')
    maps = heatmaps(rows[-1]['work_dir'])
    say('AFD link heatmap (student rows x teacher columns): '
        + (', '.join(maps) if maps else 'none written'))
    say(f'Demo done in {clock(time.time() - start)}.')
    return rows


if __name__ == '__main__':
    main()
