"""WHICH modules are distillation candidates: patterns -> module names.

A candidate is the output of one module of the network (for ResNets, one
residual block). This file turns glob patterns plus a selection rule into
the ordered list of module names a :class:`FeatureRecorder` hooks:

* ``mode='all'``: every ``stride``-th match starting at ``start`` (ResNet-110
  in the paper: ``stride=2, start=1`` keeps the 2nd, 4th, ... block);
* ``mode='interval'``: ``num`` candidates at equal intervals (Table 5);
* ``mode='random'``: ``num`` candidates drawn once with ``seed`` (Table 5);
* ``indices``: an explicit list of positions among the matches, applied
  last (negative positions count from the end).

``FAMILY_PATTERNS`` (end of file) is the one table of default patterns per
backbone family, used when a recorder is given ``patterns=None``.
"""
import difflib
import fnmatch
import random
from typing import List, Optional, Sequence, Tuple, Union

from torch import nn

SELECT_MODES = ('all', 'interval', 'random')


def match_modules(model: nn.Module,
                  patterns: Union[str, Sequence[str]]) -> List[str]:
    """Names of ``model``'s modules matching any glob, in network order.

    Globs match one dot-separated part at a time (``*`` never crosses a
    dot), so ``'backbone.layer*.*'`` selects the blocks ``layer1.0`` but not
    their inner ``layer1.0.conv1``.

    Network order is the order of ``model.named_modules()``, i.e. the order
    in which sub-modules were registered, which for every mmpretrain
    backbone is the order they run in.

    Raises:
        ValueError: a pattern matches nothing; the message lists the closest
            real module names.
    """
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    if not patterns:
        raise ValueError('`patterns` is empty: give at least one glob such '
                         "as 'backbone.layer*.*'.")
    names = [name for name, _ in model.named_modules() if name]
    for pattern in patterns:
        if not any(_match(n, pattern) for n in names):
            raise ValueError(_no_match_message(pattern, names))
    return [n for n in names if any(_match(n, p) for p in patterns)]


def _match(name: str, pattern: str) -> bool:
    parts, globs = name.split('.'), pattern.split('.')
    return len(parts) == len(globs) and all(
        fnmatch.fnmatchcase(part, glob) for part, glob in zip(parts, globs))


def _no_match_message(pattern: str, names: List[str]) -> str:
    close = difflib.get_close_matches(pattern, names, n=5, cutoff=0.3)
    if not close:  # patterns like 'backbone.stages.*' vs 'backbone.layer1.0'
        prefix = pattern.split('*')[0].rsplit('.', 1)[0]
        close = [n for n in names if n.startswith(prefix)][:5] or names[:5]
    return (f'Recorder pattern {pattern!r} matches no module of the model. '
            f'Closest module names: {close}. Change `patterns` of the '
            'recorder in your config (student_recorder / teacher_recorder).')


def select(names: Sequence[str],
           mode: str = 'all',
           stride: int = 1,
           start: int = 0,
           num: Optional[int] = None,
           seed: int = 0,
           indices: Optional[Sequence[int]] = None) -> List[str]:
    """Keep a subset of the matched ``names``; see the module docstring."""
    names = list(names)
    if mode not in SELECT_MODES:
        raise ValueError(f'Recorder `mode`={mode!r} is unknown; use one of '
                         f'{SELECT_MODES}.')
    if stride < 1 or not 0 <= start < max(len(names), 1):
        raise ValueError(
            f'Recorder `stride`={stride}, `start`={start} are invalid for '
            f'{len(names)} matched modules: need stride >= 1 and '
            f'0 <= start < {len(names)}.')
    names = names[start::stride]
    if mode != 'all':
        if num is None or not 1 <= num <= len(names):
            raise ValueError(
                f'Recorder mode {mode!r} needs `num` between 1 and '
                f'{len(names)} (the matched candidates), got {num}.')
        names = _subset(names, mode, num, seed)
    if indices is not None:
        names = _pick(names, indices)
    return names


def _subset(names: List[str], mode: str, num: int, seed: int) -> List[str]:
    if mode == 'interval':  # equal intervals, always keeping the last one
        step = len(names) / num
        keep = [round((i + 1) * step) - 1 for i in range(num)]
    else:
        keep = sorted(random.Random(seed).sample(range(len(names)), num))
    return [names[i] for i in keep]


def _pick(names: List[str], indices: Sequence[int]) -> List[str]:
    bad = [i for i in indices if not -len(names) <= i < len(names)]
    if bad:
        raise ValueError(
            f'Recorder `indices` {bad} are out of range for the '
            f'{len(names)} candidates {names}.')
    return [names[i] for i in indices]


# ------------------------------------------------ defaults per backbone
def _mobilenet_v3(backbone: nn.Module) -> List[str]:
    """``layer1`` .. ``layer{n-1}``: its ``layer0`` is the stem and its last
    ``layer{n}`` the final 1x1 conv, and ``n`` depends on the arch."""
    return [f'backbone.{name}' for name in backbone.layers[1:-1]]


# The family table: default candidates of a classifier (a model with a
# ``backbone``), one entry per backbone family, each the output of every
# block (spec section 1) and never the stem, the final 1x1 conv or the
# pooled vector. Keyed by backbone class name; a subclass takes the entry
# of its nearest listed ancestor, so ResNet covers ResNetV1c/V1d,
# ResNet_CIFAR, ResNeXt, SEResNet/SEResNeXt, RegNet, Res2Net and ResNeSt,
# and VisionTransformer covers DeiT and DeiT3. A value is a tuple of
# globs, or a function of the backbone returning them. Token outputs of
# transformers become maps in the recorder (``tokens_to_grid``).
FAMILY_PATTERNS = {
    'ResNet': ('backbone.layer*.*', ),
    'CifarResNet': ('backbone.layer*.*', ),
    'WideResNet': ('backbone.layer*.*.post_act', ),
    'MobileNetV2': ('backbone.layer*.*', ),
    'MobileNetV3': _mobilenet_v3,
    'ShuffleNetV1': ('backbone.layers.*.*', ),
    'ShuffleNetV2': ('backbone.layers.[0-2].*', ),  # layers.3: final conv
    'EfficientNet': ('backbone.layers.[1-5].*', ),  # 0: stem, 6: final conv
    'ConvNeXt': ('backbone.stages.*.*', ),
    'VisionTransformer': ('backbone.layers.*', ),
    'SwinTransformer': ('backbone.stages.*.blocks.*', ),
    'SwinTransformerV2': ('backbone.stages.*.blocks.*', ),
    'MobileOne': ('backbone.stage[1-9].*', ),  # stage0: the stem block
    'RepVGG': ('backbone.stage_*.*', ),
    'MlpMixer': ('backbone.layers.*', ),
    'PoolFormer': ('backbone.network.*.[0-9]*', ),  # not the downsamples
    'RIFormer': ('backbone.network.*.[0-9]*', ),
    'VAN': ('backbone.blocks*.*', ),
    'ConvMixer': ('backbone.stages.*', ),
    'EfficientNetV2': ('backbone.layers.*.[0-9]*', ),  # not stem/final conv
    'CSPNet': ('backbone.stages.*.blocks.*', ),  # CSPDarkNet/ResNet/ResNeXt
    'HorNet': ('backbone.stages.*.*', ),
    'EdgeNeXt': ('backbone.stages.*.*', ),
    'RepLKNet': ('backbone.stages.*.blocks.*', ),
}


# Detectors (mmdet's BaseDetector and subclasses) are distilled on what
# their heads read: the output of each backbone stage and each neck output
# level, where detection KD methods (CWD, PKD) distil (every block would
# give 16-33 detection-size maps per network). Stage tables are keyed by
# backbone class name, neck tables by neck class name, subclasses as above
# (ResNet covers mmdet's ResNetV1d, ResNeXt, Res2Net and RegNet). FPN's
# ``fpn_convs`` are its output levels (RetinaNet's extra P6/P7 convs
# included; Faster R-CNN's P6 is a max-pool, not a module).
DETECTOR_STAGE_PATTERNS = {
    'ResNet': ('backbone.layer[1-9]', ),
    'CSPDarknet': ('backbone.stage[1-9]', ),
    'SwinTransformer': ('backbone.stages.*', ),
}
DETECTOR_NECK_PATTERNS = {
    'FPN': ('neck.fpn_convs.*', ),
    'YOLOXPAFPN': ('neck.out_convs.*', ),
}


def is_detector(model: nn.Module) -> bool:
    """True for mmdet detectors (a ``BaseDetector`` subclass), checked by
    class name so that mmdet stays an optional dependency."""
    return any(cls.__name__ == 'BaseDetector'
               for cls in type(model).__mro__)


def _family_entry(module: nn.Module, table: dict):
    for cls in type(module).__mro__:
        entry = table.get(cls.__name__)
        if entry is not None:
            return list(entry(module) if callable(entry) else entry)
    return None


def detector_patterns(model: nn.Module) -> List[str]:
    """Backbone stage outputs, then neck output levels, of a detector.

    Raises:
        ValueError: its backbone or neck family has no entry; the message
            lists those that have one.
    """
    patterns = _family_entry(model.backbone, DETECTOR_STAGE_PATTERNS)
    if patterns is None:
        raise ValueError(_no_default_message(
            f'detector backbone {type(model.backbone).__name__} has no '
            'default candidates', DETECTOR_STAGE_PATTERNS,
            "'backbone.layer[1-4]'"))
    neck = getattr(model, 'neck', None)
    if isinstance(neck, nn.Module):
        neck_patterns = _family_entry(neck, DETECTOR_NECK_PATTERNS)
        if neck_patterns is None:
            raise ValueError(_no_default_message(
                f'detector neck {type(neck).__name__} has no default '
                'candidates', DETECTOR_NECK_PATTERNS,
                "['backbone.layer[1-4]', 'neck.fpn_convs.*']"))
        patterns += neck_patterns
    return patterns


def default_patterns(model: nn.Module) -> List[str]:
    """The family table's candidate globs for ``model``.

    ``model`` is a classifier with a ``backbone`` (any mmpretrain
    ``ImageClassifier``), whose entry is looked up by the backbone's class
    name, walking its base classes, so subclasses inherit their family's;
    or an mmdet detector (``detector_patterns``).

    Raises:
        ValueError: ``model`` has no ``backbone`` or its backbone family has
            no entry; the message lists the families that have one.
    """
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(_no_default_message(
            f'the model ({type(model).__name__}) has no `backbone`'))
    if is_detector(model):
        return detector_patterns(model)
    patterns = _family_entry(backbone, FAMILY_PATTERNS)
    if patterns is None:
        raise ValueError(_no_default_message(
            f'backbone {type(backbone).__name__} has no default candidates'))
    return patterns


def _no_default_message(reason: str, table: Optional[dict] = None,
                        example: str = "'backbone.stages.*.*'") -> str:
    table = FAMILY_PATTERNS if table is None else table
    return (f'The recorder has `patterns=None` (the family default), but '
            f'{reason}. Families with a default: '
            f'{sorted(table)} (and their subclasses). Set '
            '`patterns` in model.student_recorder / teacher_recorder, e.g. '
            f'patterns={example}.')


# ------------------------------------------------------ showing them
def candidate_table(side: str, names: Sequence[str],
                    shapes: Sequence[tuple]) -> str:
    """One compact table of a side's candidates: index, module, shape.

    Args:
        side: 'teacher' or 'student' (the table's title).
        names: the candidates' module names, in network order.
        shapes: their output shapes without the batch dim, (C, H, W) or (C,).
    """
    width = max([len(n) for n in names] + [6])
    rows = [f'{side} candidates ({len(names)}):',
            f'  {"index":>5}  {"module":<{width}}  shape']
    rows += [f'  {i:>5}  {n:<{width}}  {tuple(s)}'
             for i, (n, s) in enumerate(zip(names, shapes))]
    return '\n'.join(rows)


def equal_size_pairs(teacher_shapes: Sequence[tuple],
                     student_shapes: Sequence[tuple]
                     ) -> Tuple[List[int], List[int]]:
    """Index pairs for AT/FitNet: the last candidate of each spatial size
    (H, W) that both sides have, in the student's network order.

    Returns:
        (teacher indices, student indices), equally long; empty when no
        (H, W) is shared (or the candidates are vectors).
    """
    def last_of_size(shapes):
        last = {}
        for i, shape in enumerate(shapes):
            if len(shape) == 3:
                last[tuple(shape[1:])] = i
        return last

    t_last, s_last = last_of_size(teacher_shapes), last_of_size(
        student_shapes)
    shared = sorted((s_last[hw], t_last[hw]) for hw in s_last if hw in t_last)
    return [t for _, t in shared], [s for s, _ in shared]
