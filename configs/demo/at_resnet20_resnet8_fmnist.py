# Demo baseline, AT (Zagoruyko & Komodakis, ICLR 2017) + KD: attention maps
# (p = 2) of the three stage ends, paired stage by stage (teacher ResNet-20
# blocks layer{1,2,3}.2, student ResNet-8 layer{1,2,3}.0), weight 1000
# (RepDistiller), plus KD 0.9 at T=4 as configs/at/at_*.py.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    student_recorder=dict(patterns='backbone.layer*.0'),
    teacher_recorder=dict(patterns='backbone.layer*.2'),
    distill_loss=dict(
        _delete_=True, type='afd_mm.ATLoss', loss_weight=1000.0, p=2.0),
    kd_weight=0.9)
