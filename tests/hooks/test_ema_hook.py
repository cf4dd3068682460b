"""StudentEMAHook: the EMA of a distiller holds the student, no teacher."""
import os.path as osp
import sys

import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.runner import Runner
from tiny_afd import tiny_afd_config

from afd_mm.hooks.ema_hook import StudentEMAHook
from afd_mm.utils.checkpoint import load_checkpoint_file

sys.path.insert(0, osp.join(REPO, 'tools'))
import train as train_tool  # noqa: E402

EMA = dict(type='afd_mm.StudentEMAHook', momentum=0.5,
           priority='ABOVE_NORMAL')


def _config(tmp_path, max_epochs=2):
    cfg = tiny_afd_config(tmp_path, max_epochs=max_epochs,
                          custom_hooks=[EMA])
    cfg.val_dataloader = cfg.test_dataloader
    cfg.val_evaluator = cfg.test_evaluator
    cfg.val_cfg = dict()
    cfg.train_cfg.val_interval = 1
    return cfg


def _ema_hook(runner):
    return next(h for h in runner.hooks if isinstance(h, StudentEMAHook))


def test_ema_averages_the_student_only_and_validation_works(tmp_path):
    runner = Runner.from_cfg(_config(tmp_path))
    runner.train()
    model, hook = runner.model, _ema_hook(runner)
    ema = hook.ema_model.module
    ema_names = [n for n, _ in ema.named_parameters()]
    assert ema_names == [n for n, _ in model.student.named_parameters()]
    teacher = {p.data_ptr() for p in model.teacher.parameters()}
    held = {t.data_ptr() for t in hook.ema_model.state_dict().values()}
    assert not teacher & held
    assert sum(p.numel() for p in hook.ema_model.parameters()) == \
        sum(p.numel() for p in model.student.parameters())
    assert 'accuracy/top1' in runner.message_hub.log_scalars.keys() or \
        any('accuracy' in k for k in runner.message_hub.log_scalars)
    # the checkpoint: averaged student in state_dict, trained in ema field
    ckpt = load_checkpoint_file(osp.join(runner.work_dir, 'epoch_2.pth'),
                                'load_from')
    keys = [k for k in ckpt['ema_state_dict'] if k != 'steps']
    assert keys and all(k.startswith('module.') for k in keys)
    assert not any('teacher' in k for k in ckpt['ema_state_dict'])
    for key in keys:
        name = key[len('module.'):]
        torch.testing.assert_close(ckpt['state_dict']['student.' + name],
                                   ema.state_dict()[name])
        torch.testing.assert_close(ckpt['ema_state_dict'][key],
                                   model.student.state_dict()[name])
    metrics = runner.test()
    assert 'accuracy/top1' in metrics


def test_resume_restores_the_student_average(tmp_path):
    first = Runner.from_cfg(_config(tmp_path, max_epochs=1))
    first.train()
    averaged = {k: v.clone() for k, v in
                _ema_hook(first).ema_model.module.state_dict().items()}
    cfg = _config(tmp_path, max_epochs=1)
    cfg.resume = True
    cfg.load_from = osp.join(first.work_dir, 'epoch_1.pth')
    cfg.experiment_name += '_resumed'
    second = Runner.from_cfg(cfg)
    second.call_hook('before_run')  # as Runner.train() does, then resume
    second.load_or_resume()
    resumed = _ema_hook(second).ema_model.module.state_dict()
    for name, value in averaged.items():
        torch.testing.assert_close(resumed[name], value)
    trained = first.model.student.state_dict()
    for name, value in second.model.student.state_dict().items():
        torch.testing.assert_close(value, trained[name])


def test_train_tool_turns_an_inherited_ema_hook_into_it():
    cfg = Config(dict(model=dict(type='afd_mm.AFDDistiller'), custom_hooks=[
        dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]))
    train_tool.average_student_only(cfg)
    assert cfg.custom_hooks[0] == dict(type='afd_mm.StudentEMAHook',
                                       momentum=1e-4,
                                       priority='ABOVE_NORMAL')
    plain = Config(dict(model=dict(type='ImageClassifier'),
                        custom_hooks=[dict(type='EMAHook')]))
    train_tool.average_student_only(plain)
    assert plain.custom_hooks[0]['type'] == 'EMAHook'
