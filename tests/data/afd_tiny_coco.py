# A tiny AFD detection run for tests: the shipped Faster R-CNN config with
# ResNet-18 nets of 8 (student) and 16 (teacher) stem channels, on the COCO
# fixture (tests/coco_fixture.py: images of different sizes, 2 classes)
# from $AFD_TEST_DATA; batch 2, 2 epochs, CocoMetric, no workers.
_base_ = '../../configs/detection/afd_faster-rcnn_r101-r50_fpn_1x_coco.py'

data_root = '{{$AFD_TEST_DATA:data/coco_tiny}}/'

model = dict(
    student=dict(
        backbone=dict(depth=18, base_channels=8, init_cfg=None),
        neck=dict(in_channels=[8, 16, 32, 64], out_channels=16),
        rpn_head=dict(in_channels=16, feat_channels=16),
        roi_head=dict(
            bbox_roi_extractor=dict(out_channels=16),
            bbox_head=dict(in_channels=16, fc_out_channels=32,
                           num_classes=2))),
    teacher='{{fileDirname}}/tiny_faster_rcnn_teacher.py',
    teacher_ckpt=None,
    distill_loss=dict(embed_dim=16, loss_weight=5.0),
)

_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
_dataset = dict(data_root=data_root, metainfo=dict(classes=('red', 'blue')),
                data_prefix=dict(img='images/'))
_loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(
    batch_size=2, **_loader,
    dataset=dict(**_dataset, ann_file='annotations/instances_train.json',
                 pipeline=_train_pipeline))
val_dataloader = dict(
    batch_size=1, **_loader,
    dataset=dict(**_dataset, ann_file='annotations/instances_val.json',
                 pipeline=_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=2, val_interval=1)
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False,
                        begin=0, end=1)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=5))
