# ResNet-34 with a 3x3 stride-1 stem and no max-pool (mmpretrain's
# ResNet_CIFAR)
# for CIFAR (32x32 inputs, 100 classes).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=34),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ))
