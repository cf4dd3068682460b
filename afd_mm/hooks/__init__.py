from .link_matrix_hook import LinkMatrixHook
from .train_set_size_hook import TrainSetSizeHook

__all__ = ['LinkMatrixHook', 'TrainSetSizeHook']
