"""Accuracy of distillation methods on real data: Fashion-MNIST, low data.

A teacher (CIFAR ResNet-20) is trained once on more data (20,000 images);
ResNet-8 students are trained on a fixed subset of 5,000 images with each
method (alone, KD, AT, FitNet, RKD, CRD, AFD: the feature methods add KD
0.9 as the per-method configs do; DKD, DIST, KD with logit standardisation,
ReviewKD and AFD + DKD, which replace KD as configs/<method>/ do) for each
seed, and tested on the 10,000 test
images. Prints one line per run and a markdown table of top-1 mean ± std
over seeds (sample std), and writes ``results.json`` in the work dir::

    python tools/benchmark_accuracy.py [--seeds 0 1 2]
        [--methods alone kd at fitnet rkd crd afd dkd dist kd_ls reviewkd
                   afd_dkd]
        [--student-images 5000] [--student-epochs 15]
        [--teacher-images 20000] [--teacher-epochs 4] [--teacher-ckpt CKPT]
        [--data-root DIR] [--work-dir DIR] [--tiny]

The seed sets the student's initialisation, data order and augmentation;
the training subset is the same for every run (``subset_seed`` 0). The
configs are ``configs/demo/*.py`` (the demo's, ``make demo``); with
``--teacher-ckpt work_dirs/demo/teacher/epoch_4.pth`` the demo's teacher is
reused. ``--tiny`` is the size the test suite runs (32 images, 1 epoch, 2
seeds). Timings are wall clock on whatever else the machine is running;
on a machine shared with other jobs ``OMP_NUM_THREADS=1`` is much faster
than torch's default of one thread per core fighting for the cores.
"""
import argparse
import json
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

import demo  # noqa: E402

METHODS = {  # key: (config in configs/demo, row label)
    'alone': ('student_alone_resnet8_fmnist.py', 'alone (CE)'),
    'kd': ('kd_resnet20_resnet8_fmnist.py', 'KD'),
    'at': ('at_resnet20_resnet8_fmnist.py', 'AT + KD'),
    'fitnet': ('fitnet_resnet20_resnet8_fmnist.py', 'FitNet + KD'),
    'rkd': ('rkd_resnet20_resnet8_fmnist.py', 'RKD + KD'),
    'crd': ('crd_resnet20_resnet8_fmnist.py', 'CRD + KD'),
    'afd': ('afd_resnet20_resnet8_fmnist.py', 'AFD + KD'),
    'dkd': ('dkd_resnet20_resnet8_fmnist.py', 'DKD'),
    'dist': ('dist_resnet20_resnet8_fmnist.py', 'DIST'),
    'kd_ls': ('kd-ls_resnet20_resnet8_fmnist.py', 'KD + logit stand.'),
    'reviewkd': ('reviewkd_resnet20_resnet8_fmnist.py', 'ReviewKD'),
    'afd_dkd': ('afd-dkd_resnet20_resnet8_fmnist.py', 'AFD + DKD'),
}
DEFAULT = dict(teacher_images=20000, teacher_epochs=4, student_images=5000,
               student_epochs=15)
TINY = dict(teacher_images=32, teacher_epochs=1, student_images=32,
            student_epochs=1)
# relative seconds per training image, for the ETA (demo.COST's scale)
COST = dict(demo.COST, at=0.55, fitnet=0.55, rkd=0.55, crd=0.6, dkd=0.55,
            dist=0.55, kd_ls=0.55, reviewkd=0.6, afd_dkd=0.7)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Top-1 of distillation methods on low-data '
        'Fashion-MNIST, mean and std over seeds')
    parser.add_argument('--seeds', type=int, nargs='+')
    parser.add_argument('--methods', nargs='+', choices=list(METHODS),
                        default=list(METHODS))
    for key in DEFAULT:
        parser.add_argument('--' + key.replace('_', '-'), type=int)
    parser.add_argument('--teacher-ckpt', help='reuse this teacher (trained '
                        'with configs/demo/teacher_resnet20_fmnist.py) '
                        'instead of training one')
    parser.add_argument('--test-images', type=int, help='first N test '
                        'images only (default: all)')
    parser.add_argument('--data-root', default=demo.fmnist.DEBIAN_ROOT)
    parser.add_argument('--work-dir',
                        default=osp.join('work_dirs', 'benchmark_accuracy'))
    parser.add_argument('--tiny', action='store_true',
                        help='test-suite size: 32 images, 1 epoch, seeds 0 1')
    args = parser.parse_args(argv)
    args.sizes = dict(TINY if args.tiny else DEFAULT)
    args.sizes.update({k: getattr(args, k) for k in DEFAULT
                       if getattr(args, k) is not None})
    args.seeds = args.seeds or ([0, 1] if args.tiny else [0, 1, 2])
    return args


def plan_of(args) -> dict:
    """Units of work of every run (for the ETA)."""
    s, test = args.sizes, COST['test'] * args.num_test
    plan = {} if args.teacher_ckpt else {'teacher': COST['teacher'] * s[
        'teacher_images'] * s['teacher_epochs'] + test}
    for method in args.methods:
        for seed in args.seeds:
            plan[f'{method}/seed{seed}'] = COST[method] * s[
                'student_images'] * s['student_epochs'] + test
    return plan


def get_teacher(progress, args) -> dict:
    """Train and test the teacher, or test the given one."""
    if not args.teacher_ckpt:
        return demo.train_teacher(progress, args, per_epoch=False)
    start = time.time()
    opts = demo.overrides(args.data_root, args.sizes['teacher_images'],
                          args.sizes['teacher_epochs'], args.test_images)
    top1 = demo.test(osp.join(demo.CONFIGS, demo.TEACHER), args.teacher_ckpt,
                     osp.join(args.work_dir, 'teacher'), opts)
    return dict(top1=top1, ckpt=args.teacher_ckpt, label='ResNet-20 teacher',
                seconds=time.time() - start, images=None, epochs=None)


def run_all(args) -> dict:
    """Every method x seed; {'teacher': row, method: [row per seed]}."""
    progress = demo.Progress(plan_of(args))
    teacher = get_teacher(progress, args)
    demo.say(f'teacher top-1 {teacher["top1"]:.2f} ({teacher["ckpt"]}) | '
             f'{progress.status()}')
    results = {'teacher': teacher}
    for method in args.methods:
        config = METHODS[method][0]
        results[method] = []
        for seed in args.seeds:
            stage = f'{method}/seed{seed}'
            row = demo.run_stage(
                progress, stage, osp.join(demo.CONFIGS, config),
                osp.join(args.work_dir, method, f'seed{seed}'),
                demo.student_options(args, config, teacher['ckpt'], seed),
                per_epoch=False)
            results[method].append(dict(row, seed=seed))
            demo.say(f'{stage}: top-1 {row["top1"]:.2f} in '
                     f'{demo.clock(row["seconds"])} | {progress.status()}')
    return results


def mean_std(values) -> str:
    """'mean ± sample std' (just the mean for one value)."""
    mean = statistics.mean(values)
    if len(values) < 2:
        return f'{mean:.2f}'
    return f'{mean:.2f} ± {statistics.stdev(values):.2f}'


def table(results: dict, args) -> str:
    """Markdown table: teacher, then each method over the seeds."""
    seeds = ' / '.join(str(s) for s in args.seeds)
    base = None
    lines = [f'| ResNet-8 student | top-1 (%) mean ± std | vs alone '
             f'| seeds {seeds} | time per run |',
             '|---|---:|---:|---|---:|']
    for method in args.methods:
        runs = results[method]
        top1 = [r['top1'] for r in runs]
        mean = statistics.mean(top1)
        base = mean if method == 'alone' else base
        delta = '' if base is None or method == 'alone' \
            else f'{mean - base:+.2f}'
        per_run = statistics.mean(r['seconds'] for r in runs)
        lines.append(f'| {METHODS[method][1]} | {mean_std(top1)} | {delta} '
                     f'| {" / ".join(f"{v:.2f}" for v in top1)} '
                     f'| {demo.clock(per_run)} |')
    return '\n'.join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.time()
    demo.ensure_data(args.data_root)
    args.num_test = demo.num_test_images(args.data_root, args.test_images)
    s = args.sizes
    demo.say(f'Fashion-MNIST accuracy benchmark: students on '
             f'{s["student_images"]:,} images x {s["student_epochs"]} '
             f'epochs, seeds {args.seeds}, tested on {args.num_test:,} '
             f'images; work dir {args.work_dir}')
    results = run_all(args)
    teacher = results['teacher']
    trained = '' if args.teacher_ckpt else (
        f' ({s["teacher_images"]:,} images x {s["teacher_epochs"]} epochs)')
    demo.say(f'\nTeacher ResNet-20{trained}: top-1 {teacher["top1"]:.2f}\n')
    demo.say(table(results, args))
    wall = time.time() - start
    demo.say(f'\nWall time {demo.clock(wall)} (m:ss).')
    with open(osp.join(args.work_dir, 'results.json'), 'w') as f:
        json.dump(dict(sizes=s, seeds=args.seeds, num_test=args.num_test,
                       wall_s=wall, results=results), f, indent=1)
    return results


if __name__ == '__main__':
    main()
