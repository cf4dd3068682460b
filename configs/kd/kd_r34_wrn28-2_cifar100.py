# KD baseline on CIFAR-100 (AFD paper Table 1): teacher ResNet-34 (CIFAR stem)
# -> student WRN-28-2. Paper top-1: see the AFD paper, Table 1 (AFD: 77.47).
# Method: KD (Hinton et al., "Distilling the Knowledge in a Neural Network",
# 2015).
# Loss: KD alone: no feature loss; the distiller's logit KD term (kd_weight
# 0.9, T 4) is the whole distillation.
# Everything else (teacher, student, data, schedule, KD 0.9 at T=4) is
# inherited from the AFD config of the pair; only the loss block differs:
#   python tools/train.py configs/kd/kd_r34_wrn28-2_cifar100.py
_base_ = '../afd_r34_wrn28-2_cifar100.py'

model = dict(
    distill_loss=None,
)
