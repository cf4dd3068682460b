# Demo baseline, CRD (Tian et al., ICLR 2020) + KD: NCE on 128-d embeddings
# of the pooled penultimate features (`neck.gap`), memory banks over the
# training subset (num_data must equal its size: 5000 here; tools/demo.py
# and tools/benchmark_accuracy.py set it), 64 negatives, weight 0.8
# (RepDistiller), plus KD 0.9 at T=4 as configs/crd/crd_*.py.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student_recorder=dict(patterns='neck.gap'),
    teacher_recorder=dict(patterns='neck.gap'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.CRDLoss', num_data=5000,
        loss_weight=0.8, feat_dim=128, num_negatives=64, temperature=0.07,
        momentum=0.5),
    kd_weight=0.9)
