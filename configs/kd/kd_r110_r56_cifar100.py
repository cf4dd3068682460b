# KD (Hinton et al., 2015), AFD paper Table 1: ResNet-110 -> ResNet-56.
_base_ = '../afd_r110_r56_cifar100.py'

model = dict(distill_loss=None)
