from .afd_loss import AFDLoss
from .at_loss import ATLoss
from .crd_loss import CRDLoss
from .fitnet_loss import FitNetLoss
from .kd_loss import KDLoss, kd_loss
from .rkd_loss import RKDLoss

__all__ = ['AFDLoss', 'ATLoss', 'CRDLoss', 'FitNetLoss', 'KDLoss', 'kd_loss',
           'RKDLoss']
