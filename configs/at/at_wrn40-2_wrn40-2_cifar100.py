# AT baseline on CIFAR-100 (AFD paper Table 1): teacher WRN-40-2 -> student
# WRN-40-2. Paper top-1: see the AFD paper, Table 1 (AFD: 78.13).
# Method: AT (Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR
# 2017).
# Loss: attention maps (p = 2) of the three stage ends, paired stage by stage,
# weight 1000 (RepDistiller), plus KD 0.9.
# Candidates: the last block of each stage, paired stage by stage: teacher
# WRN-40-2: layer{1,2,3}.5.post_act; student WRN-40-2: layer{1,2,3}.5.post_act.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/at/at_wrn40-2_wrn40-2_cifar100.py
_base_ = '../afd_wrn40-2_wrn40-2_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.5.post_act'),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.5.post_act'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.ATLoss', loss_weight=1000.0, p=2.0),
)
