# The teacher of tests/data/afd_tiny_coco.py: mmdet's Faster R-CNN R50-FPN
# config shrunk to a ResNet-18 of 16 stem channels and a 32-channel FPN,
# 2 classes, no pretrained weights.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

model = dict(
    backbone=dict(depth=18, base_channels=16, init_cfg=None),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=32),
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=2)))
