"""Save the link matrix of a trained AFD run, for the 'fixed' links ablation.

Runs the trained distiller once over the training set (no gradient, eval
mode: BN layers, those of the meta-network included, use their running
statistics; the test pipeline, so no random augmentation; no shuffling),
averages ``distill_loss.last_alpha`` (each batch's alpha averaged over its
samples) weighted by batch size, and saves the T x S matrix as float32
.npy, rows summing to 1: the ``links_file`` of ``AFDLoss(links='fixed')``
(AFD paper Table 4, links of an already trained AFD, frozen)::

    python tools/save_links.py CONFIG CHECKPOINT [--out FILE]
        [--device cpu|cuda] [--cfg-options key=value ...]

CONFIG is the AFD run's config and CHECKPOINT one of its checkpoints; FILE
defaults to ``links.npy`` next to the checkpoint, e.g.
``work_dirs/afd_r56_r20_cifar100/links.npy`` as read by
``configs/ablations/afd_r56_r20_links-fixed_cifar100.py``.
"""
import argparse
import copy
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.utils import import_modules_from_strings  # noqa: E402

from afd_mm.registry import MODELS  # noqa: E402
from afd_mm.utils import extract_state_dict, load_checkpoint_file  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Save the training-set mean alpha of a trained AFD run')
    parser.add_argument('config', help='the AFD run\'s config file')
    parser.add_argument('checkpoint', help='a checkpoint of that run')
    parser.add_argument('--out', help='the .npy file to write (default: '
                        'links.npy next to the checkpoint)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda when available)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return parser.parse_args(argv)


def build_distiller(cfg: Config, checkpoint: str) -> torch.nn.Module:
    """The config's distiller with the checkpoint's weights, in eval mode."""
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.teacher_ckpt = None  # the checkpoint holds the teacher too
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    state = extract_state_dict(load_checkpoint_file(checkpoint,
                                                    'checkpoint'))
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f'Checkpoint {checkpoint!r} does not fit the model of the '
            f'config: missing keys {result.missing_keys[:8]}, unexpected '
            f'keys {result.unexpected_keys[:8]}. Pass the config the run '
            'was trained with.')
    loss = getattr(model, 'distill_loss', None)
    if not hasattr(loss, 'last_alpha'):
        raise ValueError(
            f'The config\'s distill_loss is {type(loss).__name__}, which has '
            'no `last_alpha`: save_links needs an AFD run '
            "(distill_loss=dict(type='afd_mm.AFDLoss')).")
    return model.eval()


def train_set_loader(cfg: Config):
    """The training set, with the test pipeline and no shuffling."""
    loader = copy.deepcopy(cfg.train_dataloader)
    test_loader = cfg.get('test_dataloader') or {}
    pipeline = test_loader.get('dataset', {}).get('pipeline') \
        or cfg.get('test_pipeline')
    if pipeline is not None:
        loader.dataset.pipeline = pipeline
    loader.sampler = dict(type='DefaultSampler', shuffle=False)
    loader.setdefault('collate_fn', dict(type='default_collate'))
    loader.persistent_workers = False
    loader.pop('batch_sampler', None)
    return Runner.build_dataloader(loader)


@torch.no_grad()
def mean_alpha(model, loader, device) -> np.ndarray:
    """alpha averaged over every sample of ``loader``: (T, S) float32."""
    total, count = None, 0
    for data in loader:
        data = model.data_preprocessor(data, training=False)
        model.loss(data['inputs'].to(device), data['data_samples'])
        num = len(data['inputs'])
        alpha = model.distill_loss.last_alpha.double() * num  # (T, S)
        total = alpha if total is None else total + alpha
        count += num
    if total is None:
        raise ValueError('The training set is empty; check '
                         '`train_dataloader.dataset` of the config.')
    return (total / count).float().cpu().numpy()  # (T, S)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_distiller(cfg, args.checkpoint).to(device)
    links = mean_alpha(model, train_set_loader(cfg), device)
    out = args.out or osp.join(osp.dirname(args.checkpoint), 'links.npy')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    np.save(out, links)
    print_log(f'save_links: {links.shape[0]} x {links.shape[1]} link matrix '
              f'(teacher x student) written to {out}; use it with '
              f"distill_loss=dict(links='fixed', links_file='{out}').",
              logger='current')
    return links


if __name__ == '__main__':
    main()
