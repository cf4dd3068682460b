"""Evaluate a checkpoint (AFD run, teacher, or plain student) on a config.

Same command line as mmpretrain's ``tools/test.py``::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--cfg-options key=value ...] [--launcher none|pytorch|slurm]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

import mmengine  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.dist import is_main_process  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from afd_mm.models.zoo_teacher import skip_teacher_weights  # noqa: E402
from afd_mm.utils.checkpoint import allow_mmengine_checkpoints  # noqa: E402
from afd_mm.utils.dist import (  # noqa: E402
    explain_dist_timeout,
    finish_distributed,
    prepare_cpu_distributed,
    setup_launcher_env,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test with afd_mm')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where the test log goes')
    parser.add_argument('--out', help='dump the metrics to this file '
                        '(json/yaml/pkl by extension)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.launcher != 'slurm':  # under Slurm: SLURM_LOCALID (dist.py)
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.load_from = args.checkpoint
    if cfg.model.get('type') == 'afd_mm.AFDDistiller':
        # testing runs the student alone, and an AFD checkpoint holds the
        # teacher too: its weights file (or download) is not needed
        skip_teacher_weights(cfg.model)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(args.config))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
    loader = cfg.test_dataloader
    if not loader.get('num_workers'):
        loader.persistent_workers = False
    allow_mmengine_checkpoints()
    setup_launcher_env(args.launcher)  # Slurm's ranks, both paths
    prepare_cpu_distributed(cfg, args.launcher)
    with explain_dist_timeout(cfg):
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        write_metrics(metrics, args.out)
        finish_distributed()
    return metrics


def write_metrics(metrics: dict, out) -> None:
    """Dump ``metrics`` to ``out`` (if given) from rank 0 only.

    Every rank holds the same gathered metrics; one writer keeps ranks on
    a shared file system from writing one path at once.
    """
    if out and is_main_process():
        mmengine.dump(metrics, out)


if __name__ == '__main__':
    main()
