# Wide ResNet 16-2 (Zagoruyko & Komodakis 2016)
# for CIFAR (32x32 inputs, 100 classes).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='afd_mm.WideResNet', depth=16, widen_factor=2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5),
    ))
