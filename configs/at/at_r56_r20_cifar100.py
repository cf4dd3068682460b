# AT baseline on CIFAR-100 (AFD paper Table 1): teacher ResNet-56 -> student
# ResNet-20. Paper top-1: see the AFD paper, Table 1 (AFD: 71.53).
# Method: AT (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR
# 2017).
# Loss: attention maps (p = 2) of the three stage ends, paired stage by stage,
# weight 1000 (RepDistiller), plus KD 0.9.
# Candidates: the last block of each stage, paired stage by stage: teacher
# ResNet-56: blocks layer{1,2,3}.8; student ResNet-20: layer{1,2,3}.2.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/at/at_r56_r20_cifar100.py
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.2'),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.8'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.ATLoss', loss_weight=1000.0, p=2.0),
)
