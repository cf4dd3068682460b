# DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher",
# NeurIPS 2022) on CIFAR-100: teacher ResNet-34 -> student WRN-28-2. No paper
# top-1 for this pair is transcribed here. Loss: DIST on the logits (beta =
# gamma = 2.0, tau 4.0: the paper's CIFAR-100 setting); no KD term. Everything
# else (teacher, student, data, schedule) is inherited from the AFD config of
# the pair:
#   python tools/train.py configs/dist/dist_r34_wrn28-2_cifar100.py
_base_ = '../afd_r34_wrn28-2_cifar100.py'

model = dict(
    student_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    teacher_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.DISTLoss',
        beta=2.0,
        gamma=2.0,
        temperature=4.0),
    kd_weight=0.0,
)
