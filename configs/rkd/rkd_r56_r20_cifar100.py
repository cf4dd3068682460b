# RKD (Park et al., 2019), AFD paper Table 1: ResNet-56 -> ResNet-20.
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(
    student_recorder=dict(patterns='neck.gap'),
    teacher_recorder=dict(patterns='neck.gap'),
    distill_loss=dict(_delete_=True, type='afd_mm.RKDLoss'),
)
