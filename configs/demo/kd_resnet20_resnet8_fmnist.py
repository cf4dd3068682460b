# Demo student with Hinton KD on logits (0.9 at T=4, the AFD release's
# CIFAR values): teacher ResNet-20 -> student ResNet-8.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(distill_loss=None, kd_weight=0.9)
