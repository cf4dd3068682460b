# CRD (Tian et al., 2020), AFD paper Table 1: WRN-40-2 -> WRN-16-2.
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(
    student_recorder=dict(patterns='neck.gap'),
    teacher_recorder=dict(patterns='neck.gap'),
    distill_loss=dict(_delete_=True, type='afd_mm.CRDLoss'),
)
