# FitNet (Romero et al., 2015), AFD paper Table 1: WRN-40-2 -> WRN-16-2.
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(
    student_recorder=dict(patterns='backbone.layer*.1.post_act'),
    teacher_recorder=dict(patterns='backbone.layer*.5.post_act'),
    distill_loss=dict(_delete_=True, type='afd_mm.FitNetLoss'),
)
