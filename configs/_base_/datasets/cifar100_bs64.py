# CIFAR-100 as in the AFD paper: flip + 32x32 crop with padding 4, batch 64.
# mmpretrain's reader, unchanged; expects data/cifar100/cifar-100-python/.
_base_ = 'mmpretrain::_base_/datasets/cifar100_bs16.py'

train_dataloader = dict(batch_size=64)
val_dataloader = dict(batch_size=64)
test_dataloader = dict(batch_size=64)
