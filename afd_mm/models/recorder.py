"""FeatureRecorder: forward hooks that collect candidate features."""
import contextlib
import math
from typing import Callable, Iterator, List, Optional, Sequence, Union

import torch
from torch import nn

from afd_mm.registry import MODELS

from .candidates import default_patterns, match_modules, select


@MODELS.register_module()
class FeatureRecorder:
    """Records the outputs of chosen modules during a forward pass.

    Works for any ``nn.Module``. Candidate modules are found by glob
    patterns over ``model.named_modules()`` names and thinned by a selection
    rule (see :mod:`afd_mm.models.candidates`). Usage::

        recorder = FeatureRecorder('backbone.layer*.*')
        recorder.attach(model)            # resolves names, adds hooks
        with recorder.record() as feats:
            model(inputs)
        # feats: one tensor per candidate, in network order
        recorder.detach()                 # removes the hooks

    ``patterns=None`` takes the default of the model's backbone family
    (``FAMILY_PATTERNS`` in :mod:`afd_mm.models.candidates`: every block of
    ResNets, MobileNets, ShuffleNets, EfficientNet, ConvNeXt, vision
    transformers, ...), looked up when the recorder is attached.

    Vision transformers: a block's output of shape (B, N, C) is a sequence of
    tokens, and with ``tokens_to_grid=True`` it is recorded as the map
    (B, C, h, w) of its patch tokens. Assumption: the patch grid is square,
    h = w = sqrt(P), and the patch tokens are the last P = h * w tokens,
    after the leading class/distillation tokens. Their number is the
    backbone's ``num_extra_tokens`` (mmpretrain's ViT: 1, DeiT: 2) when it
    has that attribute, else N - h * w with h = floor(sqrt(N)) (exact for a
    square grid of side h > k / 2 with k leading tokens). So use square
    inputs; a patch count that is not a square raises an error.

    A module whose output is a tuple or list holding one tensor (e.g. a
    whole backbone with one ``out_indices``) is recorded as that tensor.

    Two silent failure modes of forward hooks are detected and raised:

    * the recorded tensor is modified in place after it was recorded (e.g.
      by ``ReLU(inplace=True)`` in the module that follows), which would
      make the feature wrong;
    * the module runs with gradients disabled inside a forward that has
      them enabled (``torch.utils.checkpoint``, i.e. ``with_cp=True``),
      which would record a tensor with no gradient.

    Args:
        patterns (str | list[str], optional): fnmatch globs over module
            names, e.g. ``'backbone.layer*.*'`` for every residual block of
            an mmpretrain ResNet. A pattern matching nothing raises an error
            listing the closest real names. Default ``None``: the backbone
            family's default (see above); an unknown family raises an error
            listing the known ones.
        mode (str): ``'all'`` (default), ``'interval'`` (``num`` at equal
            intervals) or ``'random'`` (``num`` drawn with ``seed``); the
            teacher-candidate ablations of the paper's Table 5.
        stride (int): keep every ``stride``-th match. Default 1; the paper
            uses 2 for ResNet-110 (with ``start=1``).
        start (int): position of the first kept match. Default 0.
        num (int, optional): number of candidates for ``'interval'`` and
            ``'random'``.
        seed (int): seed of ``'random'``. Default 0.
        indices (list[int], optional): explicit positions among the kept
            matches, applied last (e.g. ``[-1]`` for the last block only).
        tokens_to_grid (bool): record (B, N, C) token outputs as
            (B, C, h, w) maps of their patch tokens (see above). Default
            True, since AFD's distances need maps; False records 3-D
            outputs unchanged.
        transform (callable, optional): applied to each candidate's output
            (a map, after ``tokens_to_grid``) as soon as its module
            returns; the recorded list then holds what it returns and the
            output itself is not kept. ``AFDDistiller`` sets it to its
            loss's ``feature_transform`` (AFD: g(h) and v(h), so the
            teacher's maps are freed at once). Default None: the outputs.
    """

    def __init__(self,
                 patterns: Union[str, Sequence[str], None] = None,
                 mode: str = 'all',
                 stride: int = 1,
                 start: int = 0,
                 num: Optional[int] = None,
                 seed: int = 0,
                 indices: Optional[Sequence[int]] = None,
                 tokens_to_grid: bool = True,
                 transform: Optional[Callable] = None) -> None:
        self.patterns = patterns
        self.tokens_to_grid = tokens_to_grid
        self.transform = transform
        self._extra_tokens: Optional[int] = None
        self.select_args = dict(mode=mode, stride=stride, start=start,
                                num=num, seed=seed, indices=indices)
        self.names: List[str] = []
        self._handles: list = []
        self._records: Optional[dict] = None
        self._raw = False
        self._grad_at_entry = False

    def attach(self, model: nn.Module) -> List[str]:
        """Resolve the candidate names in ``model`` and hook them."""
        self.detach()
        patterns = self.patterns
        if patterns is None:
            patterns = default_patterns(model)
        names = select(match_modules(model, patterns), **self.select_args)
        backbone = getattr(model, 'backbone', model)
        self._extra_tokens = getattr(backbone, 'num_extra_tokens', None)
        modules = dict(model.named_modules())
        for name in names:
            hook = self._make_hook(name)
            self._handles.append(modules[name].register_forward_hook(hook))
        self.names = names
        return names

    def detach(self) -> None:
        """Remove every hook this recorder added."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @contextlib.contextmanager
    def record(self, raw: bool = False) -> Iterator[list]:
        """Collect candidate outputs of the forward run inside the block.

        The yielded list is filled, in network order, when the block exits:
        the outputs, or what ``transform`` made of them.

        Args:
            raw (bool): keep the outputs themselves even where a
                ``transform`` is set (shape probes, visualisation).
                Default: False.
        """
        feats: list = []
        self._records = {}
        self._raw = raw
        self._grad_at_entry = torch.is_grad_enabled()
        try:
            yield feats
            feats.extend(self._collect())
        finally:
            self._records = None

    def _make_hook(self, name: str):
        def hook(module, inputs, output):
            if self._records is None:  # not recording (e.g. cp recompute)
                return
            if isinstance(output, (tuple, list)) and len(output) == 1:
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f'Candidate module {name!r} returned '
                    f'{type(output).__name__}, not a Tensor. Record a module '
                    'that outputs a feature map (change the recorder '
                    '`patterns`).')
            if self._grad_at_entry and not torch.is_grad_enabled():
                raise RuntimeError(
                    f'Candidate module {name!r} ran with gradients disabled '
                    'inside a training forward: it is under activation '
                    'checkpointing (with_cp=True), so its recorded output '
                    'would carry no gradient. Set with_cp=False in that '
                    'backbone, or record the enclosing block instead.')
            if name in self._records:
                raise RuntimeError(
                    f'Candidate module {name!r} ran twice in one forward; '
                    'record a module that runs once (change `patterns`).')
            if self.transform is not None and not self._raw:  # no version
                self._records[name] = (
                    self.transform(self._as_map(output, name)), None)
            else:
                self._records[name] = (output, output._version)
        return hook

    def _as_map(self, tensor: torch.Tensor, name: str) -> torch.Tensor:
        if self.tokens_to_grid and tensor.dim() == 3:
            return tokens_to_map(tensor, self._extra_tokens, name)
        return tensor

    def _collect(self) -> List[torch.Tensor]:
        missing = [n for n in self.names if n not in self._records]
        if missing:
            raise RuntimeError(
                f'Candidate modules {missing} did not run in the forward; '
                'record modules on the forward path (change `patterns`).')
        feats = []
        for name in self.names:
            tensor, version = self._records[name]
            if version is None:  # transformed in the hook
                feats.append(tensor)
                continue
            if tensor._version != version:
                raise RuntimeError(
                    f'The output of candidate module {name!r} was modified '
                    'in place after it was recorded (e.g. by '
                    'ReLU(inplace=True) in the next module), so the feature '
                    'would be wrong. Record the enclosing block instead, or '
                    'set inplace=False on that op.')
            feats.append(self._as_map(tensor, name))
        return feats


def tokens_to_map(tokens: torch.Tensor, num_extra: Optional[int],
                  name: str = 'candidate') -> torch.Tensor:
    """Patch tokens (B, N, C) -> map (B, C, h, w) on a square grid.

    Drops the ``num_extra`` leading class/distillation tokens; ``None``
    infers them as N - h * w with h = floor(sqrt(N)).

    Raises:
        ValueError: the patch tokens do not form a square grid.
    """
    batch, num, channels = tokens.shape  # (B, N, C)
    if num_extra is None:
        num_extra = num - math.isqrt(num) ** 2
    side = math.isqrt(max(num - num_extra, 0))
    if side == 0 or side * side != num - num_extra:
        raise ValueError(
            f'Candidate module {name!r} outputs {num} tokens; after the '
            f'{num_extra} leading class/distillation tokens the patch '
            'tokens do not form a square grid. Use square inputs '
            '(`probe_size` and the training crop), or set '
            '`tokens_to_grid=False` in the recorder and record modules '
            'that output maps.')
    grid = tokens[:, num_extra:].transpose(1, 2)  # (B, C, h * w)
    return grid.reshape(batch, channels, side, side)  # (B, C, h, w)
