# ReviewKD (Chen et al., "Distilling Knowledge via Knowledge Review", CVPR
# 2021) on ImageNet: teacher ResNet-34 -> student ResNet-18. Paper top-1 of
# the student: 71.61 (Chen et al., CVPR 2021, ImageNet table). Loss: ABF
# review path from the stage ends and the pooled feature, HCL, weight 1
# (mdistiller), warmed up over 1 epoch(s); no KD term. Everything else
# (teacher, student, data, schedule) is inherited from the AFD config of the
# pair:
#   bash tools/dist_train.sh configs/reviewkd/reviewkd_r34_r18_imagenet.py 8
_base_ = '../afd_r34_r18_imagenet.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns=['backbone.layer?', 'neck.gap']),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns=['backbone.layer?', 'neck.gap']),
    distill_loss=dict(
        _delete_=True, type='afd_mm.ReviewKDLoss', loss_weight=1.0),
    kd_weight=0.0,
)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook',
         schedules=dict(loss_reviewkd=dict(warmup=1)))
]
