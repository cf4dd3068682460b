from .afd_loss import AFDLoss
from .at_loss import ATLoss
from .crd_loss import CRDLoss
from .cwd_loss import CWDLoss
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .fitnet_loss import FitNetLoss
from .kd_loss import KDLoss, kd_loss
from .l2t_loss import L2TLoss
from .reviewkd_loss import ReviewKDLoss
from .rkd_loss import RKDLoss

__all__ = ['AFDLoss', 'ATLoss', 'CRDLoss', 'CWDLoss', 'DISTLoss', 'DKDLoss',
           'FitNetLoss', 'KDLoss', 'kd_loss', 'L2TLoss', 'ReviewKDLoss',
           'RKDLoss']
