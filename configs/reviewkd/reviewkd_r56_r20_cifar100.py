# ReviewKD (Chen et al., "Distilling Knowledge via Knowledge Review", CVPR
# 2021) on CIFAR-100: teacher ResNet-56 -> student ResNet-20. Paper top-1 of
# the student: 71.89 (Chen et al., CVPR 2021, CIFAR-100 table). Loss: ABF
# review path from the stage ends and the pooled feature, HCL, weight 1
# (mdistiller), warmed up over 20 epoch(s); no KD term. Everything else
# (teacher, student, data, schedule) is inherited from the AFD config of the
# pair:
#   python tools/train.py configs/reviewkd/reviewkd_r56_r20_cifar100.py
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns=['backbone.layer*.2', 'neck.gap']),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns=['backbone.layer*.8', 'neck.gap']),
    distill_loss=dict(
        _delete_=True, type='afd_mm.ReviewKDLoss', loss_weight=1.0),
    kd_weight=0.0,
)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook',
         schedules=dict(loss_reviewkd=dict(warmup=20)))
]
