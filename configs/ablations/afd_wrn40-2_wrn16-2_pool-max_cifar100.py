# AFD pooling ablation (AFD paper Table 7), WRN-40-2 -> WRN-16-2 on CIFAR-100:
# channel pooling 'max' of the value maps instead of the default 'a2'
# (../afd_wrn40-2_wrn16-2_cifar100.py, everything else unchanged). Paper top-1:
# see the AFD paper, Table 7.
#   python tools/train.py \
#       configs/ablations/afd_wrn40-2_wrn16-2_pool-max_cifar100.py
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(distill_loss=dict(pooling='max'))
