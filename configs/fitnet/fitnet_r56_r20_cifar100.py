# FitNet (Romero et al., 2015), AFD paper Table 1: ResNet-56 -> ResNet-20.
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(
    student_recorder=dict(patterns='backbone.layer*.2'),
    teacher_recorder=dict(patterns='backbone.layer*.8'),
    distill_loss=dict(_delete_=True, type='afd_mm.FitNetLoss'),
)
