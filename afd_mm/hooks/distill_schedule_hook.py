"""DistillScheduleHook: scale each distillation loss by epoch or iteration."""
from typing import Dict, Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from afd_mm.registry import HOOKS

SCHEDULE_KEYS = ('warmup', 'milestones', 'gamma', 'stop')


def schedule_factor(progress: int, warmup: int = 0,
                    milestones: Sequence[int] = (), gamma: float = 0.1,
                    stop: Optional[int] = None) -> float:
    """The factor of a loss at ``progress`` (0-based epoch or iteration).

    ``min((progress + 1) / warmup, 1)`` (a linear warm-up reaching 1 at the
    end of the ``warmup``-th epoch/iteration, DKD's and ReviewKD's
    ``min(epoch / 20, 1)`` with 1-based epochs), times ``gamma`` for each
    milestone reached (``progress >= m``), and 0 from ``stop`` on.

    Args:
        progress (int): the runner's epoch or iteration, 0-based.
        warmup (int): length of the warm-up; 0 for none.
        milestones (list[int]): where the factor is multiplied by gamma.
        gamma (float): the step-down factor.
        stop (int, optional): from this epoch/iteration on the loss is off.

    Returns:
        float: the factor.
    """
    if stop is not None and progress >= stop:
        return 0.0
    factor = min((progress + 1) / warmup, 1.0) if warmup > 0 else 1.0
    return factor * gamma**sum(progress >= m for m in milestones)


def _check_schedule(key: str, spec: dict) -> dict:
    if not isinstance(spec, dict):
        raise TypeError(
            f'DistillScheduleHook: `schedules[{key!r}]` must be a dict with '
            f'keys from {SCHEDULE_KEYS}, got {spec!r}.')
    unknown = sorted(set(spec) - set(SCHEDULE_KEYS))
    if unknown:
        raise KeyError(
            f'DistillScheduleHook: `schedules[{key!r}]` has unknown keys '
            f'{unknown}; allowed: {SCHEDULE_KEYS}.')
    for name in ('warmup', 'stop'):
        value = spec.get(name)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(
                f'DistillScheduleHook: `schedules[{key!r}].{name}` must be '
                f'an int >= 0, got {value!r}.')
    return dict(spec)


@HOOKS.register_module()
class DistillScheduleHook(Hook):
    """Scale each distillation loss of an ``AFDDistiller`` over training.

    Before every training iteration the hook computes, for each log key in
    ``schedules``, ``schedule_factor(progress, **spec)`` with progress the
    runner's 0-based epoch (``by_epoch=True``) or iteration, and hands the
    factors to the distiller (its ``distill_scales``), which multiplies
    that term by it (``loss_kd``: the KD term). A term whose factor is 0 is
    not computed; when every distillation term is 0 the teacher does not
    run at all and the step costs what the student alone costs. The
    factors depend only on the epoch/iteration, which mmengine's resume
    restores, so a resumed run continues the same schedule. Usage::

        custom_hooks = [dict(
            type='afd_mm.DistillScheduleHook',
            schedules=dict(
                loss_dkd=dict(warmup=20),             # DKD's warm-up
                loss_afd=dict(milestones=[150], gamma=0.5),
                loss_kd=dict(stop=200)))]             # KD off after 200

    Args:
        schedules (dict[str, dict]): log key (``'loss_kd'``, ``'loss_afd'``,
            ``'loss_at'``, ... as the distiller logs them) -> schedule with
            keys ``warmup`` (int, default 0), ``milestones`` (list[int],
            default []), ``gamma`` (float, default 0.1) and ``stop`` (int,
            default None: never); see ``schedule_factor``. Keys the
            distiller does not log raise an error listing those it does.
        by_epoch (bool): count ``warmup``/``milestones``/``stop`` in epochs
            (True, the default; the factor changes at epoch boundaries) or
            iterations (False).
    """

    priority = 'NORMAL'

    def __init__(self, schedules: Dict[str, dict], by_epoch: bool = True):
        if not isinstance(schedules, dict) or not schedules:
            raise ValueError(
                'DistillScheduleHook needs `schedules`, a non-empty dict '
                f'log key -> schedule, got {schedules!r}.')
        self.schedules = {k: _check_schedule(k, v)
                          for k, v in schedules.items()}
        self.by_epoch = by_epoch

    @staticmethod
    def _distiller(runner):
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        if not hasattr(model, 'distill_scales'):
            raise TypeError(
                'DistillScheduleHook schedules the losses of an '
                f'afd_mm.AFDDistiller, but the model is {type(model).__name__}'
                '; remove the hook from `custom_hooks`.')
        return model

    def before_train(self, runner) -> None:
        """Check the scheduled keys against the distiller's terms."""
        known = self._distiller(runner).distill_keys
        unknown = sorted(set(self.schedules) - set(known))
        if unknown:
            raise KeyError(
                f'DistillScheduleHook: `schedules` names {unknown}, which the '
                f'distiller does not compute; its distillation terms are '
                f'{known}.')

    def factors(self, progress: int) -> Dict[str, float]:
        """``{log key: factor}`` at this epoch/iteration."""
        return {k: schedule_factor(progress, **spec)
                for k, spec in self.schedules.items()}

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        """Hand this iteration's factors to the distiller."""
        progress = runner.epoch if self.by_epoch else runner.iter
        self._distiller(runner).distill_scales = self.factors(progress)
