# CRD (Tian et al., 2020), AFD paper Table 1: ResNet-34 -> WRN-28-2.
_base_ = '../afd_r34_wrn28-2_cifar100.py'

model = dict(
    student_recorder=dict(patterns='neck.gap'),
    teacher_recorder=dict(patterns='neck.gap'),
    distill_loss=dict(_delete_=True, type='afd_mm.CRDLoss'),
)
