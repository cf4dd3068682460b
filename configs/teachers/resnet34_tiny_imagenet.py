# Teacher: ResNet-34 (3x3 stem, no max-pool) on TinyImageNet with the AFD
# paper's recipe (200 epochs, batch 128, SGD 0.1 x0.2 at 60/120/150/180).
#   python tools/train.py configs/teachers/resnet34_tiny_imagenet.py
# writes work_dirs/resnet34_tiny_imagenet/epoch_200.pth, the default
# `teacher_ckpt` of the TinyImageNet AFD configs.
_base_ = [
    '../_base_/models/tiny_imagenet/resnet34.py',
    '../_base_/datasets/tiny_imagenet_bs128.py',
    '../_base_/schedules/tiny_imagenet_200e.py',
    '../_base_/default_runtime.py',
]
