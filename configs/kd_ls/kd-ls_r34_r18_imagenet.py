# KD with logit standardisation (Sun et al., "Logit Standardization in
# Knowledge Distillation", CVPR 2024) on ImageNet: teacher ResNet-34 ->
# student ResNet-18. No paper top-1 for this pair is transcribed here. Loss:
# KD on Z-scored logits, base temperature 2, KD weight 0.5, CE weight 0.5
# (mdistiller's ImageNet KD weights; the LS release's ImageNet values are not
# verified here). Everything else (teacher, student, data, schedule) is
# inherited from the AFD config of the pair:
#   bash tools/dist_train.sh configs/kd_ls/kd-ls_r34_r18_imagenet.py 8
_base_ = '../afd_r34_r18_imagenet.py'

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.5))),
    distill_loss=None,
    kd_weight=0.5,
    kd_temperature=2.0,
    kd_standardize=True,
)
