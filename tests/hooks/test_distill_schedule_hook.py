"""DistillScheduleHook: factors, a real Runner, resume, teacher skipped."""
import pytest
import torch
from conftest import tiny_classifier
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from tiny_afd import tiny_afd_config

from afd_mm.hooks.distill_schedule_hook import (
    DistillScheduleHook,
    schedule_factor,
)
from afd_mm.models.distiller import AFDDistiller
from afd_mm.registry import HOOKS

SEEN = []


@HOOKS.register_module(force=True)
class ScaleSpy(Hook):
    """Records (epoch, iter, distill_scales, losses) of every iteration."""

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        SEEN.append((runner.epoch, runner.iter,
                     dict(runner.model.distill_scales), sorted(outputs)))


def test_schedule_factor():
    assert [schedule_factor(p, warmup=4) for p in range(6)] == \
        [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert [schedule_factor(p, milestones=[2, 4], gamma=0.5)
            for p in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert [schedule_factor(p, warmup=2, stop=3) for p in range(5)] == \
        [0.5, 1.0, 1.0, 0.0, 0.0]


def test_bad_schedules_name_the_key():
    with pytest.raises(KeyError, match=r"\['warm'\]; allowed"):
        DistillScheduleHook(dict(loss_afd=dict(warm=3)))
    with pytest.raises(ValueError, match=r'loss_kd.*stop.*int >= 0'):
        DistillScheduleHook(dict(loss_kd=dict(stop=-1)))
    with pytest.raises(ValueError, match='non-empty dict'):
        DistillScheduleHook({})


def _config(tmp_path, max_epochs, schedules, **kwargs):
    cfg = tiny_afd_config(tmp_path, max_epochs=max_epochs, custom_hooks=[
        dict(type='afd_mm.DistillScheduleHook', schedules=schedules,
             **kwargs),
        dict(type='afd_mm.ScaleSpy')])
    cfg.model.kd_weight = 0.9
    return cfg


def test_unknown_key_lists_the_distillers_terms(tmp_path):
    runner = Runner.from_cfg(_config(tmp_path, 1, dict(loss_at=dict())))
    with pytest.raises(KeyError, match=r"\['loss_at'\].*\['loss_kd', "
                       r"'loss_afd'\]"):
        runner.train()


def test_runner_warmup_step_and_stop_then_resume(tmp_path):
    schedules = dict(loss_afd=dict(warmup=2, stop=3),
                     loss_kd=dict(milestones=[1], gamma=0.5, stop=3))
    SEEN.clear()
    runner = Runner.from_cfg(_config(tmp_path / 'a', 4, schedules))
    runner.train()
    full = list(SEEN)
    by_epoch = {e: s for e, _, s, _ in full}
    assert by_epoch == {0: dict(loss_afd=0.5, loss_kd=1.0),
                        1: dict(loss_afd=1.0, loss_kd=0.5),
                        2: dict(loss_afd=1.0, loss_kd=0.5),
                        3: dict(loss_afd=0.0, loss_kd=0.0)}
    losses = {e: keys for e, _, _, keys in full}
    assert 'loss_afd' in losses[2] and 'loss_kd' in losses[2]
    assert 'loss_afd' not in losses[3] and 'loss_kd' not in losses[3]
    # resume from the end of epoch 2: the same factors for epochs 2 and 3
    SEEN.clear()
    cfg = _config(tmp_path / 'b', 4, schedules)
    cfg.resume = True
    cfg.load_from = f'{runner.work_dir}/epoch_2.pth'
    Runner.from_cfg(cfg).train()
    assert SEEN == [row for row in full if row[0] >= 2]


def test_by_iteration(tmp_path):
    SEEN.clear()
    cfg = _config(tmp_path, 2, dict(loss_afd=dict(warmup=4)),
                  by_epoch=False)
    Runner.from_cfg(cfg).train()
    assert [s['loss_afd'] for _, _, s, _ in SEEN] == [0.25, 0.5, 0.75, 1.0]


def test_all_terms_off_skips_the_teacher():
    model = AFDDistiller(student=tiny_classifier(8),
                         teacher=tiny_classifier(14))
    calls = []
    model.teacher.register_forward_hook(lambda *a: calls.append(1))
    inputs = torch.randn(4, 3, 32, 32)
    samples = [DataSample().set_gt_label(i) for i in range(4)]
    model(inputs, samples, mode='loss')
    assert calls == [1]
    model.distill_scales = dict(loss_afd=0.0, loss_kd=0.0)
    losses = model(inputs, samples, mode='loss')
    assert calls == [1] and set(losses) == {'loss_cls'}
    # the student-alone loss is the student's own CE
    ref = model.student.loss(inputs, samples)['loss']
    assert torch.allclose(losses['loss_cls'], ref)
    model.distill_scales = dict(loss_afd=0.5, loss_kd=0.0)
    half = model(inputs, samples, mode='loss')
    model.distill_scales = {}
    whole = model(inputs, samples, mode='loss')
    assert set(half) == {'loss_cls', 'loss_afd'}
    assert half['loss_afd'].item() == pytest.approx(
        0.5 * whole['loss_afd'].item(), rel=1e-5)
