# Demo teacher: CIFAR ResNet-20 on 20,000 Fashion-MNIST training images,
# 4 epochs (89.2% top-1 on the 10k test images in `make demo`, which
# trains it). Alone:
#   python tools/train.py configs/demo/teacher_resnet20_fmnist.py
# writes work_dirs/teacher_resnet20_fmnist/epoch_4.pth.
_base_ = [
    './_base_/fashion_mnist_bs64.py',
    './_base_/schedule_demo.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='ImageClassifier',
    backbone=dict(type='afd_mm.CifarResNet', depth=20),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )))

train_dataloader = dict(dataset=dict(num_samples=20000))
param_scheduler = dict(T_max=4)
train_cfg = dict(max_epochs=4, val_interval=4)
randomness = dict(seed=0)
