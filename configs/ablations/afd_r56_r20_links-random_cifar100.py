# AFD paper Table 4: links='random', R56 -> R20.
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(distill_loss=dict(links='random'))
