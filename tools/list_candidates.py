"""List a distiller config's candidates without training.

Builds the model of CONFIG (the teacher's weights file is not read: the
shapes do not depend on it), prints each side's candidates (index, module,
output shape, the table the distiller logs at build time) and suggests
index pairs of equal spatial size for index-paired baselines (AT,
FitNet)::

    python tools/list_candidates.py CONFIG [--cfg-options key=value ...]
"""
import argparse
import os.path as osp
import sys
import warnings

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.logging import MMLogger, print_log  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from afd_mm.models.candidates import (  # noqa: E402
    candidate_table,
    equal_size_pairs,
)
from afd_mm.utils.config import fill_probe_size  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='List the distillation candidates of a config')
    parser.add_argument('config', help='a config of afd_mm.AFDDistiller')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys')
    return parser.parse_args(argv)


def build(cfg: Config):
    """The distiller of ``cfg``, without its teacher weights."""
    import afd_mm  # noqa: F401  (registers, knows `afd_mm::`)
    from afd_mm.models.zoo_teacher import skip_teacher_weights
    from afd_mm.registry import MODELS
    if cfg.model.get('type') != 'afd_mm.AFDDistiller':
        raise ValueError(
            f'{cfg.filename!r} has model.type={cfg.model.get("type")!r}; '
            "list_candidates needs a distiller config (model.type="
            "'afd_mm.AFDDistiller').")
    fill_probe_size(cfg)
    skip_teacher_weights(cfg.model)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # the build-time tables: report() has them
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return MODELS.build(cfg.model)
    finally:
        logger.setLevel(level)


def report(model) -> str:
    """The two tables and the suggested AT/FitNet pairs, as text."""
    shapes, _ = model._probe(model.probe_size, [])
    t_shapes = shapes[id(model.teacher_recorder)]
    s_shapes = shapes[id(model.student_recorder)]
    t_idx, s_idx = equal_size_pairs(t_shapes, s_shapes)
    lines = [f'probe input: {tuple(model.probe_size)}',
             candidate_table('teacher', model.teacher_recorder.names,
                             t_shapes),
             candidate_table('student', model.student_recorder.names,
                             s_shapes)]
    if t_idx:
        lines += [
            'AT/FitNet pairs of equal spatial size (the last candidate of '
            'each size):',
            '  ' + ', '.join(f'teacher {t} - student {s}'
                             for t, s in zip(t_idx, s_idx)),
            '  --cfg-options model.teacher_recorder.indices='
            f'{_compact(t_idx)} model.student_recorder.indices='
            f'{_compact(s_idx)}']
    else:
        lines.append('No spatial size is shared by teacher and student '
                     'candidates: AT/FitNet need pairs of equal (H, W).')
    return '\n'.join(lines)


def _compact(indices) -> str:
    return '[' + ','.join(str(i) for i in indices) + ']'


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    text = report(build(cfg))
    print_log(text, logger='current')
    return text


if __name__ == '__main__':
    main()
