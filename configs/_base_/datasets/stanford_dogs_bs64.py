# Stanford Dogs (120 classes) with L2T's transfer protocol.
_base_ = './transfer_l2t_bs64.py'

data_preprocessor = dict(num_classes=120)
train_dataloader = dict(
    dataset=dict(type='afd_mm.StanfordDogs', data_root='data/stanford_dogs/'))
val_dataloader = dict(
    dataset=dict(type='afd_mm.StanfordDogs', data_root='data/stanford_dogs/'))
test_dataloader = dict(
    dataset=dict(type='afd_mm.StanfordDogs', data_root='data/stanford_dogs/'))
