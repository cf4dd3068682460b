# DKD (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022) on
# CIFAR-100: teacher ResNet-110 -> student ResNet-56. No paper top-1 for this
# pair is transcribed here. Loss: DKD on the logits (alpha 1, beta 2.0, T 4.0;
# mdistiller's settings), warmed up linearly over 20 epoch(s) by
# afd_mm.DistillScheduleHook; no KD term. Everything else (teacher, student,
# data, schedule) is inherited from the AFD config of the pair:
#   python tools/train.py configs/dkd/dkd_r110_r56_cifar100.py
_base_ = '../afd_r110_r56_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    teacher_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.DKDLoss',
        alpha=1.0,
        beta=2.0,
        temperature=4.0),
    kd_weight=0.0,
)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook',
         schedules=dict(loss_dkd=dict(warmup=20)))
]
