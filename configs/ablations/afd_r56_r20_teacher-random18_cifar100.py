# AFD teacher-candidate ablation (AFD paper Table 5), ResNet-56 -> ResNet-20 on
# CIFAR-100: 18 of the 27 teacher blocks drawn at random once (recorder
# mode='random', seed 0); the student keeps its 9 blocks. Everything else is
# ../afd_r56_r20_cifar100.py (all 27 teacher blocks). Other counts:
# --cfg-options model.teacher_recorder.num=K. Paper top-1: see the AFD paper,
# Table 5.
#   python tools/train.py \
#       configs/ablations/afd_r56_r20_teacher-random18_cifar100.py
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(teacher_recorder=dict(mode='random', num=18, seed=0))
