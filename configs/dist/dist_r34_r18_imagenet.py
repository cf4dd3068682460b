# DIST (Huang et al., "Knowledge Distillation from A Stronger Teacher",
# NeurIPS 2022) on ImageNet: teacher ResNet-34 -> student ResNet-18. Paper
# top-1 of the student: 72.07 (Huang et al., NeurIPS 2022, ImageNet table).
# Loss: DIST on the logits (beta = gamma = 1.0, tau 1.0: the paper's ImageNet
# setting); no KD term. Everything else (teacher, student, data, schedule) is
# inherited from the AFD config of the pair:
#   bash tools/dist_train.sh configs/dist/dist_r34_r18_imagenet.py 8
_base_ = '../afd_r34_r18_imagenet.py'

model = dict(
    student_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    teacher_recorder=dict(
        _delete_=True, type='afd_mm.FeatureRecorder', patterns='head.fc'),
    distill_loss=dict(
        _delete_=True,
        type='afd_mm.DISTLoss',
        beta=1.0,
        gamma=1.0,
        temperature=1.0),
    kd_weight=0.0,
)
