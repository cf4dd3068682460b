# FitNet baseline on CIFAR-100 (AFD paper Table 1): teacher ResNet-110 ->
# student ResNet-20. Paper top-1: see the AFD paper, Table 1 (AFD: 71.38).
# Method: FitNet (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR
# 2015).
# Loss: hint = end of the teacher's stage 2, guided = end of the student's
# stage 2 (FitNetLoss picks the middle of the three recorded stage ends:
# RepDistiller's --hint_layer 2), 1x1 conv + BN regressor, weight 100
# (RepDistiller), plus KD 0.9.
# Candidates: the last block of each stage, paired stage by stage: teacher
# ResNet-110: blocks layer{1,2,3}.17 (the AFD config's stride=2/start=1 is
# dropped with `_delete_`); student ResNet-20: layer{1,2,3}.2.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/fitnet/fitnet_r110_r20_cifar100.py
_base_ = '../afd_r110_r20_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.2'),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.17'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.FitNetLoss', loss_weight=100.0),
)
