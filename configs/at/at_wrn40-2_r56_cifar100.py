# AT (Zagoruyko & Komodakis, 2017), AFD paper Table 1: WRN-40-2 -> ResNet-56.
_base_ = '../afd_wrn40-2_r56_cifar100.py'

model = dict(
    student_recorder=dict(patterns='backbone.layer*.8'),
    teacher_recorder=dict(patterns='backbone.layer*.5.post_act'),
    distill_loss=dict(_delete_=True, type='afd_mm.ATLoss'),
)
