# CRD baseline on CIFAR-100 (AFD paper Table 1): teacher WRN-40-2 -> student
# WRN-16-2. Paper top-1: see the AFD paper, Table 1 (AFD: 75.47).
# Method: CRD (Tian et al., "Contrastive Representation Distillation", ICLR
# 2020).
# Loss: NCE on 128-d embeddings of the penultimate feature (`neck.gap`) with
# memory banks over the 50000 training images, tau 0.07, momentum 0.5, weight
# 0.8 (RepDistiller), 64 negatives (the AFD paper: the batch size), plus KD
# 0.9.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/crd/crd_wrn40-2_wrn16-2_cifar100.py
_base_ = '../afd_wrn40-2_wrn16-2_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='neck.gap'),
    teacher_recorder=dict(
        _delete_=True,
        type='afd_mm.FeatureRecorder',
        patterns='neck.gap'),
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.CRDLoss',
        num_data=50000,  # CIFAR-100 train
        loss_weight=0.8,
        feat_dim=128,
        num_negatives=64,
        temperature=0.07,
        momentum=0.5),
)
