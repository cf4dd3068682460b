"""Draw teacher and student activation maps of one image (paper's Fig. 4).

Builds the AFD distiller of CONFIG, loads an AFD checkpoint (it holds the
teacher's weights too, so the config's ``teacher_ckpt`` is not read), runs
IMAGE, resized to the config's ``model.probe_size``, through both networks
and draws every candidate's channel-pooled map v(h) (default 'a2', the
mean over C of h ** 2) over the image: teacher row on top, student below::

    python tools/visualize_activations.py CONFIG CKPT IMAGE [--out FILE]
        [--pooling a2|a1|max] [--cfg-options key=value ...]
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

import mmcv  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from afd_mm.models.distance import POOLINGS, spatial_descriptor  # noqa: E402
from afd_mm.registry import MODELS  # noqa: E402
from afd_mm.utils import extract_state_dict, load_checkpoint_file  # noqa: E402
from afd_mm.visualization.activations import draw_activations  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw AFD teacher/student activation maps of an image')
    parser.add_argument('config', help='the AFD run\'s config file')
    parser.add_argument('checkpoint', help='a checkpoint of that run')
    parser.add_argument('image', help='the image file')
    parser.add_argument('--out', help='the PNG to write (default: '
                        'activations_<image name>.png)')
    parser.add_argument('--pooling', default='a2', choices=POOLINGS,
                        help='channel pooling of the maps (default: a2)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return parser.parse_args(argv)


def build_distiller(cfg: Config, checkpoint: str):
    """The distiller of ``cfg`` with the weights of ``checkpoint``."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model.copy()
    if 'student' not in model_cfg or 'teacher' not in model_cfg:
        raise KeyError(
            f'The config\'s model ({model_cfg.get("type")}) has no student '
            'and teacher; pass the config of an AFD run '
            "(model.type='afd_mm.AFDDistiller').")
    model_cfg['teacher_ckpt'] = None  # the AFD checkpoint holds the teacher
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    load_distiller_weights(model, checkpoint)
    return model.eval()


def load_distiller_weights(model, checkpoint: str) -> None:
    """Load a whole-distiller state dict, requiring every key to fit."""
    state = extract_state_dict(load_checkpoint_file(checkpoint, 'CKPT'))
    if not any(key.startswith('teacher.') for key in state):
        # the distiller would take a plain student checkpoint (and keep a
        # random teacher): the teacher's maps need the AFD run's weights
        raise ValueError(
            f'Checkpoint {checkpoint!r} does not fit the distiller built '
            'from the config: it holds no teacher weights (a plain student '
            "checkpoint?). Pass the AFD run's checkpoint as CKPT.")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(
            f'Checkpoint {checkpoint!r} does not fit the distiller built '
            f'from the config: missing keys {result.missing_keys[:8]} '
            f'({len(result.missing_keys)} in all), unexpected keys '
            f'{result.unexpected_keys[:8]} '
            f'({len(result.unexpected_keys)} in all). Pass a checkpoint '
            'saved by a training run of this same config.')


def load_image(path: str, size) -> np.ndarray:
    """The image as RGB ``uint8`` (H, W, 3), resized to ``size`` (H, W)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Image {path!r} does not exist.')
    image = mmcv.imread(path, channel_order='rgb')
    if image is None:
        raise ValueError(f'Could not read {path!r} as an image.')
    height, width = int(size[0]), int(size[1])
    return mmcv.imresize(image, (width, height))


@torch.no_grad()
def record_maps(model, image: np.ndarray, pooling: str = 'a2'):
    """Channel-pooled maps (H, W) of every teacher and student candidate.

    The image goes through the model's own data_preprocessor (normalised
    as in training; given in BGR when that preprocessor converts to RGB).
    """
    preprocessor = model.data_preprocessor
    pixels = mmcv.rgb2bgr(image) if getattr(preprocessor, 'to_rgb', False) \
        else image
    inputs = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)
    inputs = preprocessor({'inputs': [inputs]}, False)['inputs']
    with model.teacher_recorder.record(raw=True) as t_feats:
        model.teacher(inputs, mode='tensor')
    with model.student_recorder.record(raw=True) as s_feats:
        model.student(inputs, mode='tensor')
    return ([spatial_descriptor(h, pooling)[0].numpy() for h in t_feats],
            [spatial_descriptor(h, pooling)[0].numpy() for h in s_feats])


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    model = build_distiller(cfg, args.checkpoint)
    image = load_image(args.image, cfg.model.get('probe_size', (32, 32)))
    t_maps, s_maps = record_maps(model, image, args.pooling)
    drawing = draw_activations(image, t_maps, s_maps,
                               model.teacher_recorder.names,
                               model.student_recorder.names)
    name = osp.splitext(osp.basename(args.image))[0]
    out = args.out or f'activations_{name}.png'
    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(drawing), out)
    print_log(f'Activation maps of {len(t_maps)} teacher and {len(s_maps)} '
              f'student candidates written to {out}.', logger='current')
    return out


if __name__ == '__main__':
    main()
