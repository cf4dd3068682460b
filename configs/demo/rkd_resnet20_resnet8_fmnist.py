# Demo baseline, RKD (Park et al., CVPR 2019) + KD: distance (25) and angle
# (50) relations of the pooled penultimate features (`neck.gap`), plus KD
# 0.9 at T=4 as configs/rkd/rkd_*.py.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student_recorder=dict(patterns='neck.gap'),
    teacher_recorder=dict(patterns='neck.gap'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.RKDLoss', loss_weight=1.0,
        distance_weight=25.0, angle_weight=50.0),
    kd_weight=0.9)
