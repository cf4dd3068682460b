# KD (Hinton et al., 2015), AFD paper Table 1: ResNet-56 -> ResNet-20.
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(distill_loss=None)
