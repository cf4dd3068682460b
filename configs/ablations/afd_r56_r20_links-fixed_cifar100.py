# AFD paper Table 4: links='fixed' (tools/save_links.py first), R56 -> R20.
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(
    distill_loss=dict(
        links='fixed',
        links_file='work_dirs/afd_r56_r20_cifar100/links.npy'))
