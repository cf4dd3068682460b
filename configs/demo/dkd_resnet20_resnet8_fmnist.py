# Demo baseline, DKD (Zhao et al., CVPR 2022) on the logits instead of KD:
# alpha 1, beta 2, T 4 (the release's ResNet-56 teacher setting), warmed up
# over the first epoch's 79 iterations (the release: 20 of 240 epochs).
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student_recorder=dict(patterns='head.fc'),
    teacher_recorder=dict(patterns='head.fc'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.DKDLoss', alpha=1.0, beta=2.0,
        temperature=4.0),
    kd_weight=0.0)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook', by_epoch=False,
         schedules=dict(loss_dkd=dict(warmup=79)))
]
