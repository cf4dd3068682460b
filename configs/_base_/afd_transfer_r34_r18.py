# AFD for transfer learning (paper Table 3): the ImageNet-pretrained
# ResNet-34 teacher (mmpretrain's published weights) -> a ResNet-18 student
# trained from scratch. Feature distillation only (beta 1000): the teacher's
# 1000-class head is unused and there is no KD term. L2T's protocol: 200
# epochs, batch 64, SGD 0.1 with cosine decay, wd 1e-4, 224x224 crops.
# Each dataset's config inherits this and its dataset base, and sets the
# student's num_classes.
_base_ = [
    './schedules/transfer_200e.py',
    './default_runtime.py',
]

model = dict(
    type='afd_mm.AFDDistiller',
    student=dict(
        type='ImageClassifier',
        backbone=dict(type='ResNet', depth=18),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=None,  # set by each dataset's config
            in_channels=512,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            topk=(1, ))),
    teacher='mmpretrain::resnet/resnet34_8xb32_in1k.py',
    teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/resnet/'
    'resnet34_8xb32_in1k_20210831-f257d4e6.pth',
    student_recorder=dict(
        type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*'),
    teacher_recorder=dict(
        type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*'),
    distill_loss=dict(type='afd_mm.AFDLoss', loss_weight=1000.0),
    kd_weight=0.0,
    probe_size=(224, 224),
)
