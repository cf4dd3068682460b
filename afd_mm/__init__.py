"""afd_mm: Attention-based Feature Distillation for the OpenMMLab stack."""
import os.path as osp

import mmengine
import mmengine.config.config as _mm_config
import mmengine.hub.hub as _mm_hub
import mmpretrain
from mmengine.config.utils import MODULE2PACKAGE
from mmengine.utils import digit_version

__version__ = '0.1.0'

_MMENGINE_MIN, _MMPRETRAIN_MIN = '0.10.0', '1.2.0'
if digit_version(mmengine.__version__) < digit_version(_MMENGINE_MIN):
    raise ImportError(
        f'afd_mm needs mmengine>={_MMENGINE_MIN}, found '
        f'{mmengine.__version__}: run `pip install -e .` in afd_mm.')
if digit_version(mmpretrain.__version__) < digit_version(_MMPRETRAIN_MIN):
    raise ImportError(
        f'afd_mm needs mmpretrain>={_MMPRETRAIN_MIN}, found '
        f'{mmpretrain.__version__}: run `pip install -e .` in afd_mm.')

# lets configs say `_base_ = 'afd_mm::...'` and `teacher='afd_mm::...'`
MODULE2PACKAGE.setdefault('afd_mm', 'afd_mm')


def _installed_path(package, _mmengine_lookup=_mm_config.get_installed_path):
    """mmengine's package lookup, answering afd_mm's own folder for afd_mm.

    An editable (PEP 660) install keeps afd_mm's metadata in site-packages
    and its code in the checkout, so mmengine's lookup (distribution
    location + name) misses ``afd_mm/.mim`` and every ``afd_mm::`` config.
    Other packages are looked up by mmengine as before.
    """
    if package == 'afd_mm':
        return osp.dirname(osp.abspath(__file__))
    return _mmengine_lookup(package)


_mm_config.get_installed_path = _mm_hub.get_installed_path = _installed_path

from . import datasets, engine, hooks, models  # noqa: E402,F401
from .utils.atomic_io import use_atomic_local_writes  # noqa: E402
from .utils.checkpoint import allow_mmengine_checkpoints  # noqa: E402

# resume under torch's weights_only loading (see afd_mm/utils/checkpoint.py)
allow_mmengine_checkpoints()
# a crash while saving never leaves a torn checkpoint (utils/atomic_io.py)
use_atomic_local_writes()

__all__ = ['__version__']
