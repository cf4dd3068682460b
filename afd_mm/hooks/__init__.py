from .finite_checkpoint_hook import FiniteCheckpointHook
from .link_matrix_hook import LinkMatrixHook
from .train_set_size_hook import TrainSetSizeHook

__all__ = ['FiniteCheckpointHook', 'LinkMatrixHook', 'TrainSetSizeHook']
