from .loops import ResumableEpochBasedTrainLoop, ResumableIterBasedTrainLoop
from .optim_wrapper_constructor import DistillerOptimWrapperConstructor
from .runner import AFDRunner

__all__ = ['AFDRunner', 'DistillerOptimWrapperConstructor',
           'ResumableEpochBasedTrainLoop', 'ResumableIterBasedTrainLoop']
