"""Train a model (AFD distillation or a teacher) from a config file.

Same command line as mmpretrain's ``tools/train.py``::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--cfg-options key=value ...] [--launcher none|pytorch|slurm]
        [--tensorboard]
"""
import argparse
import importlib.util
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

from afd_mm.registry import RUNNERS  # noqa: E402
from afd_mm.utils.atomic_io import find_resumable_checkpoint  # noqa: E402
from afd_mm.utils.checkpoint import allow_mmengine_checkpoints  # noqa: E402
from afd_mm.utils.config import fill_probe_size  # noqa: E402
from afd_mm.utils.dist import (  # noqa: E402
    explain_dist_timeout,
    finish_distributed,
    prepare_cpu_distributed,
    setup_launcher_env,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train with afd_mm')
    parser.add_argument('config', help='config file')
    parser.add_argument('--work-dir', help='where logs and checkpoints go '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume', nargs='?', const='auto', default=None,
        help='resume from CKPT (must exist), or from the newest intact '
        'checkpoint of the work dir when no path is given (none: start '
        'from scratch)')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr by the actual total batch size')
    parser.add_argument('--tensorboard', action='store_true',
                        help='also log losses, metrics and link matrices '
                        'to TensorBoard (pip install afd_mm[tensorboard])')
    parser.add_argument('--no-pin-memory', action='store_true')
    parser.add_argument('--no-persistent-workers', action='store_true')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config keys, e.g. model.kd_weight=0 '
        'train_cfg.max_epochs=10')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    # torchrun passes --local-rank; older launchers --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.launcher != 'slurm':  # under Slurm: SLURM_LOCALID (dist.py)
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def merge_args(cfg: Config, args) -> Config:
    """Apply the command line to the config (CLI wins)."""
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        name = osp.splitext(osp.basename(args.config))[0]
        cfg.work_dir = osp.join('./work_dirs', name)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume is not None:
        cfg.resume, cfg.load_from = resume_source(cfg.work_dir, args.resume)
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        if loader is None:
            continue
        if _is_classification_loader(cfg, loader):
            # mmpretrain's tools/train.py default; mmdet's loaders keep
            # mmengine's pseudo_collate (images of different sizes)
            loader.setdefault('collate_fn', dict(type='default_collate'))
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers or not loader.get('num_workers'):
            loader.persistent_workers = False
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    use_resumable_loops(cfg)
    add_train_set_size_hook(cfg)
    skip_frozen_in_optimizer(cfg)
    average_student_only(cfg)
    use_tensorboard(cfg, args.tensorboard)
    fill_probe_size(cfg)  # the training crop, unless the config sets it
    return cfg


def _is_classification_loader(cfg: Config, loader) -> bool:
    """Neither the default scope nor the dataset's (``_scope_``, set on
    what a config inherits from ``mmdet::``) is another toolbox's."""
    ours = ('mmpretrain', 'afd_mm', None)
    dataset = loader.get('dataset') or {}
    return cfg.get('default_scope', 'mmpretrain') in ours and \
        dataset.get('_scope_') in ours


def add_train_set_size_hook(cfg: Config) -> None:
    """Distiller configs get afd_mm.TrainSetSizeHook (CRD's num_data)."""
    if not _is_distiller(cfg):
        return
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(h.get('type') in ('afd_mm.TrainSetSizeHook',
                                 'TrainSetSizeHook') for h in hooks):
        hooks.append(dict(type='afd_mm.TrainSetSizeHook'))
    cfg.custom_hooks = hooks


def _is_distiller(cfg: Config) -> bool:
    return cfg.get('model', {}).get('type') == 'afd_mm.AFDDistiller'


def skip_frozen_in_optimizer(cfg: Config) -> None:
    """Distiller configs: the optimizer leaves the frozen teacher out.

    mmengine's default constructor logs one warning per frozen teacher
    parameter when ``paramwise_cfg`` is set; an ``optim_wrapper`` without
    a ``constructor`` gets afd_mm.DistillerOptimWrapperConstructor.
    """
    wrapper = cfg.get('optim_wrapper')
    if _is_distiller(cfg) and wrapper is not None and \
            'constructor' not in wrapper:
        wrapper['constructor'] = 'afd_mm.DistillerOptimWrapperConstructor'


EMA_HOOKS = ('EMAHook', 'mmengine.EMAHook', 'mmpretrain.EMAHook')


def average_student_only(cfg: Config) -> None:
    """Distiller configs: an inherited EMAHook averages the student only.

    mmpretrain's EMAHook would keep a copy of the whole distiller, frozen
    teacher included; afd_mm.StudentEMAHook takes the same arguments.
    """
    if not _is_distiller(cfg):
        return
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') in EMA_HOOKS:
            hook['type'] = 'afd_mm.StudentEMAHook'


def use_tensorboard(cfg: Config, requested: bool) -> None:
    """``--tensorboard`` adds mmengine's TensorboardVisBackend.

    The losses and metrics (LoggerHook) and the link matrices
    (afd_mm.LinkMatrixHook) reach every backend of ``cfg.visualizer``.
    Either way, a TensorBoard backend without the package stops here.
    """
    visualizer = cfg.get('visualizer')
    if requested:
        if visualizer is None:
            visualizer = cfg.visualizer = dict(
                type='UniversalVisualizer',
                vis_backends=[dict(type='LocalVisBackend')])
        backends = visualizer.setdefault('vis_backends', [])
        if not any(_is_tensorboard(b) for b in backends):
            backends.append(dict(type='TensorboardVisBackend'))
    backends = (visualizer or {}).get('vis_backends') or []
    if any(_is_tensorboard(b) for b in backends) and \
            importlib.util.find_spec('tensorboard') is None:
        raise ImportError(
            'TensorBoard logging (--tensorboard or a TensorboardVisBackend '
            'in `visualizer.vis_backends`) needs the tensorboard package: '
            "pip install 'afd_mm[tensorboard]' (or pip install "
            'tensorboard), or drop the flag / that backend.')


def _is_tensorboard(backend) -> bool:
    return str(backend.get('type', '')).split('.')[-1] == \
        'TensorboardVisBackend'


def resume_source(work_dir: str, resume: str):
    """(``cfg.resume``, ``cfg.load_from``) for ``--resume [CKPT]``.

    An explicit CKPT must exist. ``--resume`` alone (``'auto'``) picks the
    newest intact checkpoint of ``work_dir``, skipping damaged ones with a
    warning; with none, one line says training starts from scratch.
    """
    if resume != 'auto':
        if not osp.isfile(resume) and '://' not in resume:
            raise FileNotFoundError(
                f'--resume {resume}: no such file. Pass an existing '
                'checkpoint, or `--resume` alone to resume from the newest '
                'checkpoint of the work dir.')
        return True, resume
    found = find_resumable_checkpoint(work_dir)
    if found is None:
        print_log(f'--resume: no intact checkpoint in {work_dir}; training '
                  'starts from scratch.', logger='current')
        return False, None
    return True, found


def use_resumable_loops(cfg: Config) -> None:
    """mmengine's epoch- and iteration-based loops are replaced with
    afd_mm's exactly-resumable ones (engine/loops.py)."""
    train_cfg = cfg.get('train_cfg')
    if not train_cfg:
        return
    by_epoch = train_cfg.get('by_epoch', 'max_epochs' in train_cfg)
    kind = train_cfg.get('type') or (
        'EpochBasedTrainLoop' if by_epoch else 'IterBasedTrainLoop')
    if kind in ('EpochBasedTrainLoop', 'mmengine.EpochBasedTrainLoop'):
        train_cfg['type'] = 'afd_mm.ResumableEpochBasedTrainLoop'
    elif kind in ('IterBasedTrainLoop', 'mmengine.IterBasedTrainLoop'):
        train_cfg['type'] = 'afd_mm.ResumableIterBasedTrainLoop'
    else:
        return
    train_cfg.pop('by_epoch', None)
    if train_cfg.get('_scope_') not in (None, 'mmpretrain'):
        # an mmdet base marks it _scope_='mmdet', where afd_mm's types do
        # not resolve; they do from mmpretrain's
        train_cfg['_scope_'] = 'mmpretrain'


def main(argv=None):
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)
    allow_mmengine_checkpoints()
    setup_launcher_env(args.launcher)  # Slurm's ranks, both paths
    prepare_cpu_distributed(cfg, args.launcher)
    # afd_mm.AFDRunner: no non-finite checkpoint, the configured lr wins
    # on resume, a stop on NaN/inf says what to resume (engine/runner.py)
    cfg.setdefault('runner_type', 'afd_mm.AFDRunner')
    with explain_dist_timeout(cfg):
        runner = RUNNERS.build(cfg)
        runner.train()
        finish_distributed()
    return runner


if __name__ == '__main__':
    main()
