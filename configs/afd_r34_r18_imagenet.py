# AFD on ImageNet (paper Table 2): ResNet-34 -> ResNet-18.
# Paper top-1 of the student: 71.38 (an independent port: 71.58 with
# AFD beta 50 + KD 0.9).
# Inherits mmpretrain's own ResNet-18 recipe unchanged: 100 epochs, SGD lr
# 0.1 x0.1 at 30/60/90, wd 1e-4, batch 32 per GPU x 8 GPUs = 256 total:
#   bash tools/dist_train.sh configs/afd_r34_r18_imagenet.py 8
# The teacher is mmpretrain's model-zoo ResNet-34 (73.62 top-1), named as
# in mmpretrain.list_models(): its published weights are fetched into torch
# hub's checkpoints folder on first use (offline: copy the file there, or
# set `model.teacher_ckpt` to a local copy).
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'

custom_imports = dict(imports=['afd_mm'], allow_failed_imports=False)

model = dict(
    _delete_=True,
    type='afd_mm.AFDDistiller',
    student=_base_.model,
    teacher='resnet34_8xb32_in1k',
    student_recorder=dict(
        type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*'),
    teacher_recorder=dict(
        type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*'),
    distill_loss=dict(type='afd_mm.AFDLoss', loss_weight=50.0),
    kd_weight=0.9,
    kd_temperature=4.0,
    probe_size=(224, 224),
)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
