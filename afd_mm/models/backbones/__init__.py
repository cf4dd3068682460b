from .cifar_resnet import CifarResNet
from .wide_resnet import WideResNet

__all__ = ['CifarResNet', 'WideResNet']
