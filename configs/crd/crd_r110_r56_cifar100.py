# CRD (Tian et al., 2020), AFD paper Table 1: ResNet-110 -> ResNet-56.
_base_ = '../afd_r110_r56_cifar100.py'

model = dict(
    student_recorder=dict(patterns='neck.gap'),
    teacher_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='neck.gap'),
    distill_loss=dict(_delete_=True, type='afd_mm.CRDLoss'),
)
