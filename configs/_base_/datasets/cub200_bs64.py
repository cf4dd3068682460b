# CUB-200-2011 (mmpretrain's CUB reader, 200 classes) with L2T's transfer
# protocol. data_root: the unpacked CUB_200_2011/ folder (images.txt,
# images/, ...).
_base_ = './transfer_l2t_bs64.py'

data_preprocessor = dict(num_classes=200)
train_dataloader = dict(
    dataset=dict(type='CUB', data_root='data/cub200/'))
val_dataloader = dict(
    dataset=dict(type='CUB', data_root='data/cub200/'))
test_dataloader = dict(
    dataset=dict(type='CUB', data_root='data/cub200/'))
