# AFD linking ablation (AFD paper Table 4), ResNet-56 -> ResNet-20 on
# CIFAR-100: links taken from an already trained AFD run and frozen. The
# link matrix is the T x S alpha of a trained ../afd_r56_r20_cifar100.py run
# averaged over the training set, saved by tools/save_links.py (or any
# `links/epoch_<e>.npy` written by LinkMatrixHook during that run). Paper
# top-1: see the AFD paper, Table 4.
#   python tools/train.py configs/afd_r56_r20_cifar100.py
#   python tools/save_links.py configs/afd_r56_r20_cifar100.py \
#       work_dirs/afd_r56_r20_cifar100/epoch_240.pth
#   python tools/train.py \
#       configs/ablations/afd_r56_r20_links-fixed_cifar100.py
# Another file: --cfg-options model.distill_loss.links_file=PATH.
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(
    distill_loss=dict(
        links='fixed',
        links_file='work_dirs/afd_r56_r20_cifar100/links.npy'))
