"""DistillerOptimWrapperConstructor: no per-parameter teacher warnings."""
import logging
import os.path as osp
import sys

import pytest
from conftest import REPO, tiny_classifier
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from afd_mm.models.distiller import AFDDistiller

sys.path.insert(0, osp.join(REPO, 'tools'))
import train as train_tool  # noqa: E402

PARAMWISE = dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                 custom_keys={'.head': dict(lr_mult=0.1)})


class _Records(logging.Handler):

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def _distiller():
    return AFDDistiller(
        student=tiny_classifier(depth=8, num_classes=10),
        teacher=tiny_classifier(depth=14, num_classes=10),
        distill_loss=dict(type='afd_mm.AFDLoss'))


def _build(model, constructor=None):
    """(optimizer wrapper, log records) of building ``model``'s optimizer."""
    cfg = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9,
                              weight_decay=5e-4),
               paramwise_cfg=PARAMWISE)
    if constructor:
        cfg['constructor'] = constructor
    logger = MMLogger.get_current_instance()
    handler = _Records()
    logger.addHandler(handler)
    try:
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            wrapper = build_optim_wrapper(model, cfg)
    finally:
        logger.removeHandler(handler)
    return wrapper, handler.records


def _teacher_warnings(records):
    return [r for r in records if r.levelno >= logging.WARNING
            and 'teacher' in r.getMessage()]


def _groups(wrapper, model):
    """{parameter name: (lr, weight decay)} of an optimizer."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g['lr'], g['weight_decay'])
            for g in wrapper.optimizer.param_groups for p in g['params']}


def test_frozen_teacher_skipped_with_one_line_and_same_groups():
    model = _distiller()
    default, default_logs = _build(model)
    assert len(_teacher_warnings(default_logs)) > 20  # mmengine's noise
    ours, logs = _build(model, 'afd_mm.DistillerOptimWrapperConstructor')
    assert _teacher_warnings(logs) == []
    summary = [r.getMessage() for r in logs
               if r.getMessage().startswith('Not optimised')]
    num_teacher = len(list(model.teacher.parameters()))
    assert summary == [f'Not optimised (no trainable parameter): teacher '
                       f'({num_teacher} tensors)']
    # everything else is mmengine's: same parameters, lr and decay
    assert _groups(ours, model) == _groups(default, model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(_groups(ours, model)) == trainable
    assert _groups(ours, model)['student.head.fc.weight'][0] == \
        pytest.approx(0.01)


def test_without_paramwise_cfg_it_is_mmengines():
    model = _distiller()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, dict(
            constructor='afd_mm.DistillerOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1)))
    params = wrapper.optimizer.param_groups[0]['params']
    assert len(params) == len(list(model.parameters()))  # resume-safe


def test_train_tool_selects_it_for_distillers_only():
    def merged(model_type, **optim):
        cfg = Config(dict(model=dict(type=model_type),
                          optim_wrapper=dict(optimizer=dict(type='SGD'),
                                             **optim)))
        train_tool.skip_frozen_in_optimizer(cfg)
        return cfg.optim_wrapper.get('constructor')

    assert merged('afd_mm.AFDDistiller') == \
        'afd_mm.DistillerOptimWrapperConstructor'
    assert merged('ImageClassifier') is None
    mine = 'LearningRateDecayOptimWrapperConstructor'
    assert merged('afd_mm.AFDDistiller', constructor=mine) == mine
