# AFD on TinyImageNet (paper Table 2): ResNet-34 -> ResNet-18, both with the
# 3x3 stride-1 stem and no max-pool. Paper top-1 of the student: 68.80.
# Recipe: 200 epochs, batch 128, SGD 0.1 x0.2 at 60/120/150/180, wd 5e-4,
# beta 50, KD 0.9 at T=4.
#   python tools/train.py configs/teachers/resnet34_tiny_imagenet.py
#   bash tools/dist_train.sh configs/afd_r34_r18_tiny_imagenet.py 2
_base_ = [
    './_base_/models/tiny_imagenet/resnet18.py',  # the student
    './_base_/datasets/tiny_imagenet_bs128.py',
    './_base_/schedules/tiny_imagenet_200e.py',
    './_base_/default_runtime.py',
]

model = dict(
    _delete_=True,
    type='afd_mm.AFDDistiller',
    student=_base_.model,
    teacher='afd_mm::teachers/resnet34_tiny_imagenet.py',
    teacher_ckpt='work_dirs/resnet34_tiny_imagenet/epoch_200.pth',
    student_recorder=dict(
        type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*'),
    teacher_recorder=dict(
        type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*'),
    distill_loss=dict(type='afd_mm.AFDLoss', loss_weight=50.0),
    kd_weight=0.9,
    kd_temperature=4.0,
    probe_size=(64, 64),
)
