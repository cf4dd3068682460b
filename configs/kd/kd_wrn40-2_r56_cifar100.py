# KD (Hinton et al., 2015), AFD paper Table 1: WRN-40-2 -> ResNet-56.
_base_ = '../afd_wrn40-2_r56_cifar100.py'

model = dict(distill_loss=None)
