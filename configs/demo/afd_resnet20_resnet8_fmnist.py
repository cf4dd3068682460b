# Demo student with AFD: teacher ResNet-20 (9 candidate blocks) -> student
# ResNet-8 (3 blocks), with the release's CIFAR loss weights (AFD beta 200
# plus KD 0.9 at T=4). LinkMatrixHook saves the learnt links every epoch
# and draws them: <work_dir>/links/links_strip.png.
_base_ = './student_base_resnet8_fmnist.py'

model = dict(
    distill_loss=dict(_delete_=True, type='afd_mm.AFDLoss',
                      loss_weight=200.0),
    kd_weight=0.9)
custom_hooks = [dict(type='afd_mm.LinkMatrixHook')]
