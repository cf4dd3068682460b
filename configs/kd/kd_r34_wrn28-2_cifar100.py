# KD (Hinton et al., 2015), AFD paper Table 1: ResNet-34 -> WRN-28-2.
_base_ = '../afd_r34_wrn28-2_cifar100.py'

model = dict(distill_loss=None)
