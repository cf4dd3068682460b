"""Refuse to save a checkpoint whose weights or optimizer state are not
finite: every checkpoint written can be resumed from."""
from typing import Dict, Iterable, Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from afd_mm.registry import HOOKS


@HOOKS.register_module()
class FiniteCheckpointHook(Hook):
    """Stop training instead of saving non-finite weights or optimizer state.

    The distiller stops on a non-finite loss, but an optimizer step can turn
    finite weights into NaN/inf after a finite loss; mmengine's
    ``CheckpointHook`` would then save them in the same iteration, and that
    newest checkpoint could never be resumed. Before every save
    (``before_save_checkpoint``, so periodic, last and best checkpoints
    alike) this hook checks each floating-point tensor of the checkpoint's
    ``state_dict`` and ``optimizer`` state and raises
    ``FloatingPointError`` at the first non-finite one, naming the
    iteration and the parameter (optimizer state is named after its
    parameter). Nothing is written. ``afd_mm.AFDRunner`` (what
    ``tools/train.py`` builds) registers it and adds which checkpoint to
    resume from; add it to ``custom_hooks`` to use it with another runner.

    The check runs only when a checkpoint is saved: its cost is one pass
    over the weights and optimizer state per save. No arguments.
    """

    priority = 'VERY_HIGH'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Raise ``FloatingPointError`` if ``checkpoint`` is not finite."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        bad = first_non_finite(checkpoint.get('state_dict', {}).items())
        where = f'parameter `{bad[0]}`' if bad else None
        if bad is None and 'optimizer' in checkpoint:
            bad = first_non_finite(_optimizer_tensors(
                checkpoint['optimizer'], _param_names(runner, model)))
            where = f'optimizer state `{bad[0]}`' if bad else None
        if bad is None:
            return
        raise FloatingPointError(
            f'Non-finite weights at iteration {runner.iter + 1}: the first '
            f'non-finite tensor is the {where} ({bad[1]} of {bad[2]} values '
            'NaN/inf). Likely cause: the update itself (this iteration\'s '
            'loss was finite, its optimizer step was not): the learning '
            'rate (optim_wrapper.optimizer.lr) or a loss weight '
            '(`loss_weight` of distill_loss, i.e. beta, or kd_weight) is '
            'too high for these gradients. The checkpoint of this '
            'iteration was not written.')


def first_non_finite(
        named: Iterable[Tuple[str, object]]
) -> Optional[Tuple[str, int, int]]:
    """(name, non-finite count, numel) of the first non-finite tensor."""
    for name, value in named:
        if not (isinstance(value, torch.Tensor) and
                value.is_floating_point()):
            continue
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            return name, int((~finite).sum()), value.numel()
    return None


def _param_names(runner, model) -> Dict[int, str]:
    """Optimizer state index -> the parameter's name in the model."""
    wrapper = runner.optim_wrapper
    optimizer = getattr(wrapper, 'optimizer', None)
    if optimizer is None:  # OptimWrapperDict: name by index only
        return {}
    names = {id(p): n for n, p in model.named_parameters()}
    params = [p for group in optimizer.param_groups for p in group['params']]
    return {i: names.get(id(p), str(i)) for i, p in enumerate(params)}


def _optimizer_tensors(state: dict, names: Dict[int, str]):
    """(name, tensor) of every tensor in an optimizer's state dict."""
    if 'state' not in state:  # OptimWrapperDict: {name: state dict}
        for sub in state.values():
            if isinstance(sub, dict):
                yield from _optimizer_tensors(sub, {})
        return
    for index, slots in (state.get('state') or {}).items():
        for slot, value in (slots or {}).items():
            yield f'{slot} of {names.get(index, index)}', value
