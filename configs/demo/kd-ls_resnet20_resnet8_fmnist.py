# Demo baseline, KD with logit standardisation (Sun et al., CVPR 2024): the
# KD term on Z-scored logits, base temperature 2, KD weight 9, CE weight 0.1
# (their CIFAR-100 setting).
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_loss=None,
    kd_weight=9.0,
    kd_temperature=2.0,
    kd_standardize=True)
