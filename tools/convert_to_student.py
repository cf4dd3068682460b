"""Turn an AFD checkpoint into a plain mmpretrain checkpoint of the student.

Writes OUT: the student's weights alone (the ``student.`` keys of the
distiller, prefix stripped; no teacher, no meta-network) and ``meta`` with
the run's ``dataset_meta``; and OUT with a ``.py`` extension: a runnable
mmpretrain config of the student, rebuilt from the AFD run's config that
mmengine stored in the checkpoint (``meta['cfg']``, read as data and never
executed; pass ``--config`` for checkpoints without it, or whose stored
config is more than data)::

    python tools/convert_to_student.py CKPT OUT [--config AFD_CONFIG]

The result loads with mmpretrain alone::

    from mmpretrain.apis import ImageClassificationInferencer, get_model
    model = get_model('OUT.py', pretrained='OUT')
    inferencer = ImageClassificationInferencer('OUT.py', pretrained='OUT')
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

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

from afd_mm.utils import extract_state_dict, load_checkpoint_file  # noqa: E402
from afd_mm.utils.config_text import config_from_text  # noqa: E402

# what tools/test.py (ours and mmpretrain's) and the inferencer read
_TEST_KEYS = ('test_pipeline', 'test_dataloader', 'test_evaluator',
              'test_cfg', 'env_cfg', 'default_hooks', 'log_processor',
              'visualizer', 'log_level')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract the student of an AFD checkpoint')
    parser.add_argument('checkpoint', help='an AFD run\'s checkpoint')
    parser.add_argument('out', help='the student checkpoint to write; its '
                        'config goes next to it with a .py extension')
    parser.add_argument('--config', help='the AFD run\'s config, for '
                        'checkpoints that do not store it in meta')
    return parser.parse_args(argv)


def student_state(checkpoint: dict, path: str) -> dict:
    """The ``student.`` weights of an AFD checkpoint, prefix stripped."""
    state = extract_state_dict(checkpoint, prefix='student.')
    if not state:
        keys = list(extract_state_dict(checkpoint))[:5]
        raise ValueError(
            f'{path!r} has no `student.` keys (its first keys: {keys}), so '
            'it is not a checkpoint of an AFD distiller. Pass a checkpoint '
            'written by training an afd_mm.AFDDistiller config; a plain '
            'classifier checkpoint needs no conversion.')
    return state


def afd_config(meta: dict, config_path=None, source='CKPT') -> Config:
    """The AFD run's config: ``--config`` if given, else ``meta['cfg']``.

    The stored text is parsed as data (``afd_mm.utils.config_text``), never
    executed: text that is not plain data is refused.
    """
    if config_path is not None:
        return Config.fromfile(config_path)
    text = meta.get('cfg')
    if not text:
        raise KeyError(
            'The checkpoint stores no config (meta[\'cfg\'] is missing); '
            'pass the AFD run\'s config with --config CONFIG.')
    try:
        return config_from_text(text, f"meta['cfg'] of {source}")
    except ValueError as err:
        raise ValueError(
            f'{err} Pass the AFD run\'s config file with --config CONFIG.'
        ) from None


def _uses_afd_types(node) -> bool:
    """Whether any ``type`` in a nested config is written 'afd_mm.X'."""
    if isinstance(node, dict):
        kind = node.get('type')
        if isinstance(kind, str) and kind.startswith('afd_mm.'):
            return True
        return any(_uses_afd_types(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_uses_afd_types(v) for v in node)
    return False


def student_config(cfg: Config) -> Config:
    """A plain config of the student of an AFD config, in the student's
    toolbox (mmpretrain; mmdet for a detection config)."""
    student = cfg.get('model', {}).get('student')
    if not student:
        raise KeyError(
            'The AFD config has no `model.student`; pass the config of an '
            "AFD run (model.type='afd_mm.AFDDistiller') with --config.")
    model = copy.deepcopy(student.to_dict() if hasattr(student, 'to_dict')
                          else dict(student))
    # the student's toolbox: mmpretrain, or the scope its dict carries when
    # inherited from another toolbox's config (mmdet)
    out = dict(default_scope=model.get('_scope_', 'mmpretrain'))
    preprocessor = cfg.get('data_preprocessor') or \
        cfg.model.get('data_preprocessor')
    if preprocessor:
        preprocessor = copy.deepcopy(dict(preprocessor))
        model['data_preprocessor'] = preprocessor
        out['data_preprocessor'] = preprocessor
    out['model'] = model
    for key in _TEST_KEYS:
        if cfg.get(key) is not None:
            out[key] = copy.deepcopy(cfg[key])
    if out.get('test_dataloader') is not None:
        # mmengine needs test_dataloader, test_cfg and test_evaluator all
        # set or all None
        out.setdefault('test_cfg', dict())
    imports = cfg.get('custom_imports')  # e.g. a dataset of afd_mm's
    if imports is not None:
        out['custom_imports'] = copy.deepcopy(imports)
    elif _uses_afd_types(model):
        out['custom_imports'] = dict(imports=['afd_mm'],
                                     allow_failed_imports=False)
    return Config(out)


def main(argv=None):
    args = parse_args(argv)
    if args.out.endswith('.py'):
        raise ValueError(
            f'OUT={args.out!r} is the checkpoint to write and its config '
            'goes next to it as OUT with a .py extension; give OUT a '
            'checkpoint name such as student.pth.')
    checkpoint = load_checkpoint_file(args.checkpoint, 'CKPT')
    state = student_state(checkpoint, args.checkpoint)
    meta = checkpoint.get('meta') or {}
    cfg = student_config(afd_config(meta, args.config, args.checkpoint))
    out_meta = {}
    if meta.get('dataset_meta') is not None:
        out_meta['dataset_meta'] = meta['dataset_meta']
    if osp.dirname(args.out):
        os.makedirs(osp.dirname(args.out), exist_ok=True)
    torch.save(dict(state_dict=state, meta=out_meta), args.out)
    cfg_path = osp.splitext(args.out)[0] + '.py'
    cfg.dump(cfg_path)
    if 'test_dataloader' not in cfg:
        print_log('The AFD config has no test_dataloader; add one to '
                  f'{cfg_path} before tools/test.py or the inferencer.',
                  logger='current')
    print_log(f'Student checkpoint ({len(state)} tensors) written to '
              f'{args.out}, its config to {cfg_path}.', logger='current')
    return args.out, cfg_path


if __name__ == '__main__':
    main()
