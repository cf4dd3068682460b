# The transfer datasets (CUB200, MIT67, Stanford40, Stanford Dogs) with
# L2T's transfer protocol
# ("Learning What and Where to Transfer", Jang et al., ICML 2019), which
# AFD follows for its transfer table (batch 64, 224 crops). Transforms as
# in L2T's released code, github.com/alinlab/L2T-ww check_dataset.py
# (train_large_transform / val_large_transform; the AFD release,
# github.com/clovaai/attention-feature-distillation dataset.py, uses the
# same): train RandomResizedCrop(224) + RandomHorizontalFlip; test
# Resize(256) (short edge) + CenterCrop(224); ImageNet mean/std. Those
# run on PIL images (ImageFolder), so images are decoded and resized with
# Pillow, bilinear, here too.
# Each dataset's file inherits this one and sets the dataset type, its
# data_root and num_classes.
data_preprocessor = dict(
    num_classes=None,  # set by each dataset's file
    # RGB format normalization parameters (ImageNet)
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    # convert image from BGR to RGB
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        backend='pillow',
        interpolation='bilinear'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]

test_pipeline = [
    dict(type='LoadImageFromFile', imdecode_backend='pillow'),
    dict(
        type='ResizeEdge',
        scale=256,
        edge='short',
        backend='pillow',
        interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=None,  # set by each dataset's file
        data_root=None,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)

val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        type=None,  # set by each dataset's file
        data_root=None,
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
