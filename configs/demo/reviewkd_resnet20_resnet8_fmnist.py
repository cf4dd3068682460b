# Demo baseline, ReviewKD (Chen et al., CVPR 2021): ABF review path from the
# student's three stage ends (ResNet-8 layer{1,2,3}.0) and pooled feature to
# the teacher's (ResNet-20 layer{1,2,3}.2, neck.gap), HCL, weight 1, warmed
# up over the first epoch's 79 iterations (mdistiller: 20 of 240 epochs); no
# KD term.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student_recorder=dict(patterns=['backbone.layer*.0', 'neck.gap']),
    teacher_recorder=dict(patterns=['backbone.layer*.2', 'neck.gap']),
    distill_loss=dict(
        _delete_=True, type='afd_mm.ReviewKDLoss', loss_weight=1.0),
    kd_weight=0.0)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook', by_epoch=False,
         schedules=dict(loss_reviewkd=dict(warmup=79)))
]
