# AFD on COCO detection: Faster R-CNN R101-FPN -> R50-FPN.
# mmdet 3.3.0's own 1x recipe of the student, unchanged (12 epochs, SGD lr
# 0.02, batch 2 per GPU x 8 GPUs):
#   bash tools/dist_train.sh \
#     configs/detection/afd_faster-rcnn_r101-r50_fpn_1x_coco.py 8
# mmdet's model zoo: teacher 39.4 box AP, student alone 37.4.
# Candidates: the detector default of each side, the 4 ResNet stages and
# the 4 FPN levels (afd_mm/models/candidates.py). beta is the paper's
# ImageNet value; the paper has no detection setting.
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['afd_mm'], allow_failed_imports=False)
# afd_mm's scope, as every afd_mm config; what this file inherits from
# mmdet carries _scope_='mmdet' and builds in mmdet's registries
default_scope = 'mmpretrain'

model = dict(
    _delete_=True,
    type='afd_mm.AFDDistiller',
    student=_base_.model,
    teacher='mmdet::faster_rcnn/faster-rcnn_r101_fpn_1x_coco.py',
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/'
    'faster_rcnn/faster_rcnn_r101_fpn_1x_coco/'
    'faster_rcnn_r101_fpn_1x_coco_20200130-f513f705.pth',
    distill_loss=dict(type='afd_mm.AFDLoss', loss_weight=50.0),
    kd_weight=0.0,  # detectors output no class logits to distil
)
