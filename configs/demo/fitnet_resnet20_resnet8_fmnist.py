# Demo baseline, FitNet (Romero et al., ICLR 2015) + KD: hint = end of the
# teacher's stage 2 (ResNet-20 layer2.2), guided = end of the student's
# stage 2 (ResNet-8 layer2.0), 1x1 conv + BN regressor, weight 100
# (RepDistiller), plus KD 0.9 at T=4 as configs/fitnet/fitnet_*.py.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student_recorder=dict(patterns='backbone.layer*.0'),
    teacher_recorder=dict(patterns='backbone.layer*.2'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.FitNetLoss', loss_weight=100.0),
    kd_weight=0.9)
