# Shared base of the demo students: CIFAR ResNet-8 on a low-data subset of
# 5,000 Fashion-MNIST training images, 15 epochs, taught by the demo
# teacher (ResNet-20, trained on 20,000 images). The student configs
# differ only in their loss block:
#   student_alone_resnet8_fmnist.py   CE only (the student classifier alone)
#   kd_resnet20_resnet8_fmnist.py     CE + Hinton KD (0.9, T=4)
#   afd_resnet20_resnet8_fmnist.py    CE + KD + AFD (beta 200), the release
#   {at,fitnet,rkd,crd}_resnet20_resnet8_fmnist.py   baselines (+ KD)
# Train the teacher config first. `make demo` (tools/demo.py) runs teacher,
# alone, KD and AFD; tools/benchmark_accuracy.py runs all, over seeds.
_base_ = [
    './_base_/fashion_mnist_bs64.py',
    './_base_/schedule_demo.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='afd_mm.AFDDistiller',
    student=dict(
        type='ImageClassifier',
        backbone=dict(type='afd_mm.CifarResNet', depth=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=10,
            in_channels=64,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            topk=(1, ))),
    teacher='{{fileDirname}}/teacher_resnet20_fmnist.py',
    teacher_ckpt='work_dirs/teacher_resnet20_fmnist/epoch_4.pth',
    student_recorder=dict(type='afd_mm.FeatureRecorder',
                          patterns='backbone.layer*.*'),
    teacher_recorder=dict(type='afd_mm.FeatureRecorder',
                          patterns='backbone.layer*.*'),
    distill_loss=None,  # the loss block: set by each student config
    kd_weight=0.0,
    kd_temperature=4.0,
    probe_size=(32, 32),
)

train_dataloader = dict(dataset=dict(num_samples=5000, subset_seed=0))
param_scheduler = dict(T_max=15)
train_cfg = dict(max_epochs=15, val_interval=15)
randomness = dict(seed=0)
