# AFD paper Table 7: pooling='a1' (default 'a2'), WRN-40-2 -> WRN-16-2.
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(distill_loss=dict(pooling='a1'))
