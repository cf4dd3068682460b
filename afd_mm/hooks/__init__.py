from .finite_checkpoint_hook import FiniteCheckpointHook
from .link_matrix_hook import LinkMatrixHook

__all__ = ['FiniteCheckpointHook', 'LinkMatrixHook']
