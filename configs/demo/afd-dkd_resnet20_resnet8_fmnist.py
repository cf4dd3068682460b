# Demo of combined losses: AFD (beta 200, the distiller's candidates) plus
# DKD on the logits (its own recorders on head.fc; alpha 1, beta 2, T 4,
# warmed up over the first epoch) in place of KD. Logged as loss_afd and
# loss_dkd.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    distill_loss=[
        dict(type='afd_mm.AFDLoss', loss_weight=200.0),
        dict(type='afd_mm.DKDLoss', alpha=1.0, beta=2.0, temperature=4.0,
             student_recorder=dict(type='afd_mm.FeatureRecorder',
                                   patterns='head.fc'),
             teacher_recorder=dict(type='afd_mm.FeatureRecorder',
                                   patterns='head.fc')),
    ],
    kd_weight=0.0)
custom_hooks = [
    dict(type='afd_mm.DistillScheduleHook', by_epoch=False,
         schedules=dict(loss_dkd=dict(warmup=79)))
]
