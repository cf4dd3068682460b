"""AFDRunner: mmengine's Runner whose failures can be resumed from."""
import logging
from typing import Callable, List, Tuple, Union

from mmengine.logging import print_log
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner

from afd_mm.hooks.finite_checkpoint_hook import FiniteCheckpointHook
from afd_mm.hooks.rng_state_hook import RNGStateHook
from afd_mm.registry import RUNNERS
from afd_mm.utils.atomic_io import find_resumable_checkpoint


@RUNNERS.register_module()
class AFDRunner(Runner):
    """mmengine's ``Runner`` that stops cleanly on non-finite values.

    Selected with ``runner_type = 'afd_mm.AFDRunner'`` (``tools/train.py``
    sets it when the config names no other runner). Its arguments are
    those of ``mmengine.runner.Runner``; it differs in three ways:

    * ``train()`` registers :class:`afd_mm.FiniteCheckpointHook` (unless
      the config already has one), so a checkpoint with non-finite weights
      or optimizer state is never written, and :class:`afd_mm.RNGStateHook`
      (likewise), so a resumed run draws the random numbers the
      interrupted one would have.
    * When training stops on a non-finite loss or update
      (``FloatingPointError``), the message gains which checkpoint to
      resume from (the newest intact one of ``work_dir``) and the command
      that resumes it with a lower learning rate.
    * ``resume()`` keeps the configured learning rate: mmengine restores
      the optimizer's and the schedulers' learning rates from the
      checkpoint, so ``--cfg-options optim_wrapper.optimizer.lr=...`` had
      no effect on resume. Where the configured base learning rate of a
      parameter group differs from the checkpoint's, the group's current
      lr and every lr scheduler's base value are scaled by their ratio
      (the schedule goes on from the new base) and the change is logged.
      Same config, same values: nothing changes, bit for bit.
    """

    def train(self):
        """``Runner.train``; a ``FloatingPointError`` says how to resume."""
        for hook in (FiniteCheckpointHook, RNGStateHook):
            if not any(isinstance(h, hook) for h in self.hooks):
                self.register_hook(hook())
        try:
            return super().train()
        except FloatingPointError as err:
            message = f'{err} {self._resume_advice()}'
            raise FloatingPointError(message).with_traceback(
                err.__traceback__) from None

    def resume(self,
               filename: str,
               resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """``Runner.resume``, then the configured learning rates apply."""
        configured = [_base_lrs(wrapper)
                      for wrapper, _ in self._lr_owners()]
        super().resume(filename, resume_optimizer, resume_param_scheduler,
                       map_location)
        if resume_optimizer and configured:
            for (wrapper, schedulers), lrs in zip(self._lr_owners(),
                                                  configured):
                _rebase_lrs(wrapper, schedulers, lrs, filename)

    def _lr_owners(self) -> List[Tuple[OptimWrapper, list]]:
        """(optimizer wrapper, its lr schedulers) pairs, once built."""
        schedulers = self.param_schedulers
        if isinstance(self.optim_wrapper, OptimWrapperDict):
            return [(wrapper, (schedulers or {}).get(name) or [])
                    for name, wrapper in self.optim_wrapper.items()]
        if isinstance(self.optim_wrapper, OptimWrapper):
            return [(self.optim_wrapper,
                     schedulers if isinstance(schedulers, list) else [])]
        return []  # not built yet (resume() called before train())

    def _resume_advice(self) -> str:
        ckpt = find_resumable_checkpoint(self.work_dir)
        config = self.cfg.filename or 'CONFIG'
        lower = '--cfg-options optim_wrapper.optimizer.lr=<lower value>'
        if ckpt is None:
            return ('No checkpoint had been written; after fixing the cause '
                    f'start again, for a lower learning rate with '
                    f'`python tools/train.py {config} {lower}`.')
        return (f'Resume from {ckpt} (the newest intact checkpoint; every '
                'checkpoint written holds finite values) after fixing the '
                f'cause; for a lower learning rate: `python tools/train.py '
                f'{config} --resume {ckpt} {lower}` (on resume the '
                'configured learning rate replaces the checkpoint\'s).')


def _base_lrs(wrapper: OptimWrapper) -> List[float]:
    """Each param group's base lr (``initial_lr`` once a scheduler ran)."""
    return [group.get('initial_lr', group['lr'])
            for group in wrapper.optimizer.param_groups]


def _rebase_lrs(wrapper: OptimWrapper, schedulers: list,
                configured: List[float], filename: str) -> None:
    """Scale resumed lrs and lr schedulers to the configured base lrs."""
    changed = []
    for index, group in enumerate(wrapper.optimizer.param_groups):
        stored, wanted = group.get('initial_lr', group['lr']), \
            configured[index]
        if stored == wanted or stored == 0:
            continue
        factor = wanted / stored
        group['lr'] *= factor
        if 'initial_lr' in group:
            group['initial_lr'] = wanted
        for scheduler in schedulers:
            if getattr(scheduler, 'param_name', None) == 'lr':
                scheduler.base_values[index] *= factor
                if getattr(scheduler, '_last_value', None):
                    scheduler._last_value[index] = group['lr']
        changed.append(f'group {index}: {stored:g} -> {wanted:g}')
    if changed:
        print_log(
            f'Resumed {filename} with the configured learning rate '
            f'(optim_wrapper.optimizer.lr) instead of the stored one '
            f'({"; ".join(changed)}); the schedule goes on from it.',
            logger='current', level=logging.WARNING)
