# RKD baseline on CIFAR-100 (AFD paper Table 1): teacher WRN-40-2 -> student
# WRN-16-2. Paper top-1: see the AFD paper, Table 1 (AFD: 75.47).
# Method: RKD (Park et al., "Relational Knowledge Distillation", CVPR 2019).
# Loss: distance (25) + angle (50) relations of the penultimate embedding, the
# output of the GlobalAveragePooling neck (`neck.gap`, (B, C, 1, 1), pooled to
# (B, C) by the loss), plus KD 0.9.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/rkd/rkd_wrn40-2_wrn16-2_cifar100.py
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='neck.gap'),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='neck.gap'),
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.RKDLoss',
        loss_weight=1.0,
        distance_weight=25.0,
        angle_weight=50.0),
)
