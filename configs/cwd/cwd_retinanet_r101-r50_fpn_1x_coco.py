# CWD (Shu et al., ICCV 2021) on COCO: RetinaNet R101-FPN -> R50-FPN, the
# detection KD baseline beside configs/detection/afd_retinanet_*.py (same
# teacher, student, data and schedule; only the loss block differs).
#   bash tools/dist_train.sh \
#     configs/cwd/cwd_retinanet_r101-r50_fpn_1x_coco.py 8
# Loss on the 5 FPN levels, tau 1, weight 10 (mmrazor's CWD RetinaNet
# recipe).
_base_ = '../detection/afd_retinanet_r101-r50_fpn_1x_coco.py'

_fpn = dict(type='afd_mm.FeatureRecorder', patterns='neck.fpn_convs.*')
model = dict(
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.CWDLoss',
        tau=1.0,
        loss_weight=10.0,
        student_recorder=_fpn,
        teacher_recorder=_fpn))
