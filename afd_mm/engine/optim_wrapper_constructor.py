"""An optimizer built from the trainable parts only: no frozen teacher."""
from typing import List, Optional, Tuple, Union

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from torch import nn

from afd_mm.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillerOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor that skips frozen sub-modules whole.

    With a ``paramwise_cfg``, mmengine's ``DefaultOptimWrapperConstructor``
    logs one warning per parameter with ``requires_grad=False``: 160-210
    lines for a distiller's frozen teacher. This constructor leaves every
    sub-module without a trainable parameter (the teacher, frozen stages,
    fixed links) out of the optimizer and logs one line naming them; all
    else, ``paramwise_cfg`` rules included, is mmengine's. Without a
    ``paramwise_cfg`` it is mmengine's constructor unchanged (all of
    ``model.parameters()`` in one group, no warnings; frozen ones never
    get a gradient, so they are never updated).

    ``tools/train.py`` selects it for ``afd_mm.AFDDistiller`` configs whose
    ``optim_wrapper`` names no ``constructor``; with another training
    script write::

        optim_wrapper = dict(
            constructor='afd_mm.DistillerOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
            paramwise_cfg=dict(norm_decay_mult=0.0))

    Args:
        optim_wrapper_cfg (dict): the config's ``optim_wrapper`` (its
            ``optimizer`` and wrapper type), as for mmengine's constructor.
        paramwise_cfg (dict, optional): mmengine's parameter-wise options
            (``custom_keys``, ``norm_decay_mult``, ``bias_lr_mult``, ...).
            Default: None (one group of all trainable parameters).
    """

    def __init__(self, optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        self.frozen: List[Tuple[str, int]] = []  # (module name, #tensors)

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """mmengine's optimizer wrapper; one log line of what is frozen."""
        self.frozen = []
        wrapper = super().__call__(model)
        if self.frozen:
            print_log(
                'Not optimised (no trainable parameter): ' + ', '.join(
                    f'{name} ({num} tensors)' for name, num in self.frozen),
                logger='current')
        return wrapper

    def add_params(self, params: List[dict], module: nn.Module,
                   prefix: str = '',
                   is_dcn_module: Union[int, float, None] = None) -> None:
        """mmengine's ``add_params``, a frozen sub-module skipped whole."""
        tensors = list(module.parameters())
        if prefix and tensors and not any(p.requires_grad for p in tensors):
            self.frozen.append((prefix, len(tensors)))
            return
        super().add_params(params, module, prefix, is_dcn_module)

