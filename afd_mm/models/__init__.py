from . import backbones, losses  # noqa: F401  (registers)
from .distiller import AFDDistiller
from .recorder import FeatureRecorder

__all__ = ['AFDDistiller', 'FeatureRecorder']
