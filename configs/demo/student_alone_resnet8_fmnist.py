# Demo student without a teacher: ResNet-8 trained with CE alone on the
# 5,000-image subset (the base's data and schedule, no distiller).
_base_ = './student_base_resnet8_fmnist.py'

model = dict(_delete_=True, **_base_.model.student)
