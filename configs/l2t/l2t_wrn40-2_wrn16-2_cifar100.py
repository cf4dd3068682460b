# L2T baseline on CIFAR-100 (AFD paper Table 1): teacher WRN-40-2 -> student
# WRN-16-2. Paper top-1: see the AFD paper, Table 1 (AFD: 75.47).
# Method: L2T (Jang et al., "Learning What and Where to Transfer", ICML 2019).
# Loss: all 3 x 3 pairs of teacher / student stage ends, weighted per pair
# ("where") and per channel ("what") by meta-networks trained with the
# meta-gradient of the cross-entropy through T = 2 look-ahead steps (Adam
# 1e-4); weight 0.5 (L2T-ww's defaults), plus KD 0.9. About 7x the cost per
# iteration of AFD (R56 -> R20, batch 64, CPU, measured). The look-ahead SGD
# uses the runner's lr and the momentum / weight decay below, which match the
# schedule's optimizer.
# Candidates: the last block of each stage, paired stage by stage: teacher
# WRN-40-2: layer{1,2,3}.5.post_act; student WRN-16-2: layer{1,2,3}.1.post_act.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/l2t/l2t_wrn40-2_wrn16-2_cifar100.py
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.1.post_act'),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.5.post_act'),
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.L2TLoss',
        loss_weight=0.5,
        inner_steps=2,
        meta_lr=1e-4,
        meta_weight_decay=1e-4,
        inner_momentum=0.9,
        inner_weight_decay=5e-4),
)
