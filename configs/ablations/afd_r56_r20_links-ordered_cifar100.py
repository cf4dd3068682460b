# AFD linking ablation (AFD paper Table 4), ResNet-56 -> ResNet-20 on
# CIFAR-100: ordered links: teacher candidate t linked one-hot to the
# proportional student candidate round(t (S - 1) / (T - 1)). No meta-network;
# everything else is ../afd_r56_r20_cifar100.py (co-trained AFD links, the
# paper's default row). Paper top-1: see the AFD paper, Table 4.
#   python tools/train.py \
#       configs/ablations/afd_r56_r20_links-ordered_cifar100.py
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(distill_loss=dict(links='ordered'))
