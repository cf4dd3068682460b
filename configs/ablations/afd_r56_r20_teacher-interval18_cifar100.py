# AFD paper Table 5: 18 teacher blocks at equal intervals, R56 -> R20.
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(teacher_recorder=dict(mode='interval', num=18))
