# Teacher: WRN-40-2 on CIFAR-100 with the AFD paper's recipe
# (240 epochs, batch 64, SGD 0.05 x0.1 at 150/180/210, wd 5e-4).
#   python tools/train.py configs/teachers/wrn40_2_cifar100.py
# writes work_dirs/wrn40_2_cifar100/epoch_240.pth, the default
# `teacher_ckpt` of the AFD configs that use this teacher.
_base_ = [
    '../_base_/models/cifar/wrn40_2.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/cifar100_240e.py',
    '../_base_/default_runtime.py',
]
