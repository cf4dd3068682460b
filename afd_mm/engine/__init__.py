from .loops import ResumableEpochBasedTrainLoop
from .runner import AFDRunner

__all__ = ['AFDRunner', 'ResumableEpochBasedTrainLoop']
