# AFD linking ablation (AFD paper Table 4), ResNet-56 -> ResNet-20 on
# CIFAR-100: random links: each teacher candidate linked one-hot to a student
# candidate drawn once with `link_seed`, then frozen. No meta-network;
# everything else is ../afd_r56_r20_cifar100.py (co-trained AFD links, the
# paper's default row). Paper top-1: see the AFD paper, Table 4.
#   python tools/train.py \
#       configs/ablations/afd_r56_r20_links-random_cifar100.py
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(distill_loss=dict(links='random', link_seed=0))
