# KD with logit standardisation (Sun et al., "Logit Standardization in
# Knowledge Distillation", CVPR 2024) on CIFAR-100: teacher ResNet-56 ->
# student ResNet-20. No paper top-1 for this pair is transcribed here. Loss:
# KD on Z-scored logits, base temperature 2, KD weight 9.0, CE weight 0.1 (the
# LS release's CIFAR-100 command line: --logit-stand --base-temp 2 --kd-weight
# 9, on mdistiller's CE weight 0.1). Everything else (teacher, student, data,
# schedule) is inherited from the AFD config of the pair:
#   python tools/train.py configs/kd_ls/kd-ls_r56_r20_cifar100.py
_base_ = '../afd_r56_r20_cifar100.py'

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_loss=None,
    kd_weight=9.0,
    kd_temperature=2.0,
    kd_standardize=True,
)
