# AFD beta sweep (AFD paper Fig. 5), WRN-40-2 -> WRN-16-2 on CIFAR-100: beta =
# 30 (the loss_weight of AFDLoss) instead of the release's 200
# (../afd_wrn40-2_wrn16-2_cifar100.py, everything else unchanged). Any other
# value without a file: python tools/train.py
# configs/afd_wrn40-2_wrn16-2_cifar100.py --cfg-options
# model.distill_loss.loss_weight=BETA. Paper: see the AFD paper, Fig. 5.
#   python tools/train.py \
#       configs/ablations/afd_wrn40-2_wrn16-2_beta30_cifar100.py
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(distill_loss=dict(loss_weight=30.0))
