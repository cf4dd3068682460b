from .link_matrix_hook import LinkMatrixHook

__all__ = ['LinkMatrixHook']
