# ReviewKD (Chen et al., "Distilling Knowledge via Knowledge Review", CVPR
# 2021) on CIFAR-100: teacher WRN-40-2 -> student WRN-40-2. No paper top-1 for
# this pair is transcribed here. Loss: ABF review path from the stage ends and
# the pooled feature, HCL, weight 1 (mdistiller), warmed up over 20 epoch(s);
# no KD term. Everything else (teacher, student, data, schedule) is inherited
# from the AFD config of the pair:
#   python tools/train.py configs/reviewkd/reviewkd_wrn40-2_wrn40-2_cifar100.py
_base_ = '../afd_wrn40-2_wrn40-2_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns=['backbone.layer*.5.post_act', 'neck.gap']),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns=['backbone.layer*.5.post_act', 'neck.gap']),
    distill_loss=dict(
        _delete_=True, type='afd_mm.ReviewKDLoss', loss_weight=1.0),
    kd_weight=0.0,
)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook',
         schedules=dict(loss_reviewkd=dict(warmup=20)))
]
