# CIFAR ResNet-32 (He et al. 2016)
# for CIFAR (32x32 inputs, 100 classes).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='afd_mm.CifarResNet', depth=32),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ))
