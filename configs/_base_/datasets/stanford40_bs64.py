# Stanford40 Actions (40 classes) with L2T's transfer protocol.
_base_ = './transfer_l2t_bs64.py'

data_preprocessor = dict(num_classes=40)
train_dataloader = dict(
    dataset=dict(type='afd_mm.Stanford40', data_root='data/stanford40/'))
val_dataloader = dict(
    dataset=dict(type='afd_mm.Stanford40', data_root='data/stanford40/'))
test_dataloader = dict(
    dataset=dict(type='afd_mm.Stanford40', data_root='data/stanford40/'))
