# AFD paper Fig. 5: beta = 50 (default 200), WRN-40-2 -> WRN-16-2.
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(distill_loss=dict(loss_weight=50.0))
