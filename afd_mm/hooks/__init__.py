from .distill_schedule_hook import DistillScheduleHook
from .ema_hook import StudentEMAHook
from .finite_checkpoint_hook import FiniteCheckpointHook
from .link_matrix_hook import LinkMatrixHook
from .rng_state_hook import RNGStateHook
from .train_set_size_hook import TrainSetSizeHook

__all__ = [
    'DistillScheduleHook', 'FiniteCheckpointHook', 'LinkMatrixHook',
    'RNGStateHook', 'StudentEMAHook', 'TrainSetSizeHook'
]
