from .checkpoint import (
                         allow_mmengine_checkpoints,
                         extract_state_dict,
                         load_checkpoint_file,
)
from .dist import prepare_cpu_distributed

__all__ = ['allow_mmengine_checkpoints', 'extract_state_dict',
           'load_checkpoint_file', 'prepare_cpu_distributed']
