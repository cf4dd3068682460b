# MIT Indoor 67 (67 classes) with L2T's transfer protocol.
_base_ = './transfer_l2t_bs64.py'

data_preprocessor = dict(num_classes=67)
train_dataloader = dict(
    dataset=dict(type='afd_mm.MIT67', data_root='data/mit67/'))
val_dataloader = dict(
    dataset=dict(type='afd_mm.MIT67', data_root='data/mit67/'))
test_dataloader = dict(
    dataset=dict(type='afd_mm.MIT67', data_root='data/mit67/'))
