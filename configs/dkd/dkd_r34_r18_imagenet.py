# DKD (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022) on
# ImageNet: teacher ResNet-34 -> student ResNet-18. Paper top-1 of the
# student: 71.70 (Zhao et al., CVPR 2022, ImageNet table). Loss: DKD on the
# logits (alpha 1, beta 0.5, T 1.0; mdistiller's settings), warmed up linearly
# over 1 epoch(s) by afd_mm.DistillScheduleHook; no KD term. Everything else
# (teacher, student, data, schedule) is inherited from the AFD config of the
# pair:
#   bash tools/dist_train.sh configs/dkd/dkd_r34_r18_imagenet.py 8
_base_ = '../afd_r34_r18_imagenet.py'

model = dict(
    student_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    teacher_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.DKDLoss',
        alpha=1.0,
        beta=0.5,
        temperature=1.0),
    kd_weight=0.0,
)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook',
         schedules=dict(loss_dkd=dict(warmup=1)))
]
