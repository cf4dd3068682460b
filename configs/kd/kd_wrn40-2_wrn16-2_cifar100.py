# KD (Hinton et al., 2015), AFD paper Table 1: WRN-40-2 -> WRN-16-2.
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(distill_loss=None)
