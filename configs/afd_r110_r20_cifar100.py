# AFD on CIFAR-100 (paper Table 1): teacher ResNet-110 -> student ResNet-20.
# Paper top-1 of the student: 71.38.
# Recipe: the paper's (240 epochs, batch 64, SGD 0.05 x0.1 at 150/180/210,
# wd 5e-4) with the release's loss weights (beta 200, KD 0.9 at T=4).
#   python tools/train.py configs/teachers/resnet110_cifar100.py    # teacher
#   python tools/train.py configs/afd_r110_r20_cifar100.py
_base_ = [
    './_base_/models/cifar/resnet20.py',  # the student
    './_base_/datasets/cifar100_bs64.py',
    './_base_/schedules/cifar100_240e.py',
    './_base_/default_runtime.py',
]

model = dict(
    _delete_=True,
    type='afd_mm.AFDDistiller',
    student=_base_.model,
    teacher='afd_mm::teachers/resnet110_cifar100.py',
    teacher_ckpt='work_dirs/resnet110_cifar100/epoch_240.pth',
    student_recorder=dict(
        type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*'),
    teacher_recorder=dict(
        type='afd_mm.FeatureRecorder',
        patterns='backbone.layer*.*',
        stride=2,  # the paper: every second block (2nd, 4th, ... 18th)
        start=1),
    distill_loss=dict(type='afd_mm.AFDLoss', loss_weight=200.0),
    kd_weight=0.9,
    kd_temperature=4.0,
    probe_size=(32, 32),
)
