# L2T (Jang et al., 2019), AFD paper Table 1: ResNet-34 -> WRN-28-2.
_base_ = '../afd_r34_wrn28-2_cifar100.py'

model = dict(
    student_recorder=dict(patterns='backbone.layer*.3.post_act'),
    teacher_recorder=dict(patterns=[
        'backbone.layer1.2', 'backbone.layer2.3', 'backbone.layer3.5']),
    distill_loss=dict(_delete_=True, type='afd_mm.L2TLoss'),
)
