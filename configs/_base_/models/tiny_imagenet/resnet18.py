# ResNet-18 for TinyImageNet as in the AFD paper: a 3x3 stride-1 stem and no
# max-pool (mmpretrain's ResNet_CIFAR), 200 classes, 64x64 inputs.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=200,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ))
