# Demo baseline, DIST (Huang et al., NeurIPS 2022) on the logits instead of
# KD: beta = gamma = 2, tau 4 (the paper's CIFAR-100 setting).
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student_recorder=dict(patterns='head.fc'),
    teacher_recorder=dict(patterns='head.fc'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.DISTLoss', beta=2.0, gamma=2.0,
        temperature=4.0),
    kd_weight=0.0)
