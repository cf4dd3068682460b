# FitNet baseline on CIFAR-100 (AFD paper Table 1): teacher ResNet-34 (CIFAR
# stem) -> student WRN-28-2. Paper top-1: see the AFD paper, Table 1 (AFD:
# 77.47).
# Method: FitNet (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR
# 2015).
# Loss: hint = end of the teacher's stage 2, guided = end of the student's
# stage 2 (FitNetLoss picks the middle of the three recorded stage ends:
# RepDistiller's --hint_layer 2), 1x1 conv + BN regressor, weight 100
# (RepDistiller), plus KD 0.9.
# Candidates: the last block of each stage, paired stage by stage: teacher
# ResNet-34: layer1.2, layer2.3, layer3.5, the ends of its first three stages
# (32x32, 16x16, 8x8); its fourth stage (4x4) has no student map of that size;
# student WRN-28-2: layer{1,2,3}.3.post_act.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/fitnet/fitnet_r34_wrn28-2_cifar100.py
_base_ = '../afd_r34_wrn28-2_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.3.post_act'),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns=['backbone.layer1.2', 'backbone.layer2.3',
                  'backbone.layer3.5']),
    distill_loss=dict(
        _delete_=True, type='afd_mm.FitNetLoss', loss_weight=100.0),
)
