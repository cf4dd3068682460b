"""StudentEMAHook: an EMA of a distiller's student, not of its teacher."""
from mmengine.model import is_model_wrapper
from mmengine.registry import MODELS
from mmpretrain.engine.hooks import EMAHook
from torch import nn

from afd_mm.registry import HOOKS


@HOOKS.register_module()
class StudentEMAHook(EMAHook):
    """mmpretrain's ``EMAHook`` that keeps an average of the student only.

    mmpretrain's (and mmengine's) ``EMAHook`` deep-copies the whole model:
    for a distiller that is a second, never-changing copy of the frozen
    teacher (and of the distillation losses). This hook averages
    ``model.student`` alone when the model has a ``student`` and a
    ``teacher``; validation and test swap the student's weights with the
    average, and checkpoints hold ``ema_state_dict`` with the student's
    keys (``module.<student key>``) while ``state_dict`` holds the
    average in ``student.*`` as mmpretrain's hook does. Any other model is
    averaged whole, exactly as by mmpretrain's hook.

    ``tools/train.py`` turns an ``EMAHook`` that an ``afd_mm.AFDDistiller``
    config inherits from its mmpretrain student config into this hook
    (same arguments); with another training script write::

        custom_hooks = [dict(type='afd_mm.StudentEMAHook',
                             momentum=1e-4, priority='ABOVE_NORMAL')]

    Args:
        ema_type (str): the averaged-model type (mmengine's
            ``mmengine.model.averaged_model``). Default:
            'ExponentialMovingAverage'.
        strict_load (bool): load ``ema_state_dict`` strictly. Default:
            False.
        begin_iter (int): the iteration from which to average. Default: 0.
        begin_epoch (int): the epoch from which to average (not with
            ``begin_iter``). Default: 0.
        evaluate_on_ema (bool): validate and test the averaged student.
            Default: True.
        evaluate_on_origin (bool): also validate and test the trained
            student. Default: False.
        momentum (float): the EMA momentum, as for ``ema_type``. Default:
            0.0002 (mmengine's ExponentialMovingAverage).
        interval (int): average every ``interval`` iterations. Default: 1.
        update_buffers (bool): average the buffers too (BN statistics).
            Default: False (copied from the student).
    """

    def __init__(self,
                 ema_type: str = 'ExponentialMovingAverage',
                 strict_load: bool = False,
                 begin_iter: int = 0,
                 begin_epoch: int = 0,
                 evaluate_on_ema: bool = True,
                 evaluate_on_origin: bool = False,
                 momentum: float = 0.0002,
                 interval: int = 1,
                 update_buffers: bool = False) -> None:
        super().__init__(ema_type, strict_load, begin_iter, begin_epoch,
                         evaluate_on_ema, evaluate_on_origin,
                         momentum=momentum, interval=interval,
                         update_buffers=update_buffers)
        self.prefix = ''  # 'student.' once a distiller is found

    def before_run(self, runner) -> None:
        """The averaged copy: of the student only, for a distiller."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        student = getattr(model, 'student', None)
        if not (isinstance(student, nn.Module)
                and isinstance(getattr(model, 'teacher', None), nn.Module)):
            return super().before_run(runner)
        self.src_model, self.prefix = student, 'student.'
        self.ema_model = MODELS.build(
            self.ema_cfg, default_args=dict(model=self.src_model))

    def _swap_ema_state_dict(self, checkpoint: dict) -> None:
        """Swap the averaged student with ``state_dict``'s ``student.*``."""
        if not self.prefix:
            return super()._swap_ema_state_dict(checkpoint)
        model_state = checkpoint['state_dict']
        ema_state = checkpoint['ema_state_dict']
        for key in ema_state:
            if key.startswith('module.'):
                src = self.prefix + key[len('module.'):]
                ema_state[key], model_state[src] = \
                    model_state[src], ema_state[key]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Load the averaged student (also from a whole-model EMA)."""
        if self.prefix:
            checkpoint = self._student_only(checkpoint)
        super().after_load_checkpoint(runner, checkpoint)

    def _student_only(self, checkpoint: dict) -> dict:
        """The checkpoint as seen by a student-only EMA."""
        ema = checkpoint.get('ema_state_dict')
        whole = 'module.' + self.prefix
        if ema is not None and any(k.startswith(whole) for k in ema):
            # saved by an EMAHook over the whole distiller: keep the
            # student's part, renamed to this hook's keys; the rest of
            # state_dict gets back its trained (not averaged) values
            for key, value in ema.items():
                if key.startswith('module.') and not key.startswith(whole):
                    checkpoint['state_dict'][key[len('module.'):]] = value
            checkpoint['ema_state_dict'] = {
                ('module.' + k[len(whole):] if k.startswith(whole) else k): v
                for k, v in ema.items()
                if k.startswith(whole) or not k.startswith('module.')}
        elif ema is None:  # mmpretrain's hook then copies state_dict
            state = {k[len(self.prefix):]: v
                     for k, v in checkpoint['state_dict'].items()
                     if k.startswith(self.prefix)}
            checkpoint = dict(checkpoint, state_dict=state)
        return checkpoint
