from .distill_schedule_hook import DistillScheduleHook
from .link_matrix_hook import LinkMatrixHook

__all__ = ['DistillScheduleHook', 'LinkMatrixHook']
