# Tiny ImageNet with the paper's recipe (docs: spec/AFD.md Sec. 5): pad 4 to
# 72, random crop 64, horizontal flip; test on the 64x64 images as they
# are; batch 128; ImageNet mean/std.
dataset_type = 'afd_mm.TinyImageNet'
data_preprocessor = dict(
    num_classes=200,
    # RGB format normalization parameters (ImageNet)
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    # convert image from BGR to RGB
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=64, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root='data/tiny_imagenet/',
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        data_root='data/tiny_imagenet/',
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))

# The official test/ folder has no labels: test on val/, as the paper does.
test_dataloader = val_dataloader
test_evaluator = val_evaluator
