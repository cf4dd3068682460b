# Fashion-MNIST (Xiao et al. 2017) for CIFAR-style nets, batch 64.
# The reader (afd_mm.FashionMNIST) gives 32x32x3 uint8 images: the 28x28
# grey image padded by 2 black pixels and repeated on 3 channels. Files:
# the 4 gzipped IDX files of `apt-get install dataset-fashion-mnist`.
# Training: CIFAR's flip + 32x32 crop with padding 4. Test: the 10k images.
data_root = '/usr/share/datasets/fashion-mnist'
dataset_type = 'afd_mm.FashionMNIST'
data_preprocessor = dict(
    num_classes=10,
    # mean/std of the 28x28 training images, 0.2860 / 0.3530 in [0, 1]
    mean=[72.94] * 3,
    std=[90.02] * 3,
    to_rgb=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,  # in-memory uint8 arrays: workers only cost CPU here
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 num_samples=None, subset_seed=0, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=256,
    num_workers=0,
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
