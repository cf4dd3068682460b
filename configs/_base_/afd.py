# AFD base piece: add AFD to a working mmpretrain config by listing this
# file in `_base_` beside it and wrapping its `model` as the student
# (docs/add_afd_to_your_config.md):
#
#   _base_ = ['<your mmpretrain config>', 'afd_mm::_base_/afd.py']
#   model = dict(
#       _delete_=True,
#       type='afd_mm.AFDDistiller',
#       student=_base_.model,
#       teacher='<teacher config>',
#       teacher_ckpt='<teacher weights>',
#       probe_size=(224, 224))  # your training crop
#
# A base cannot see the `model` of another base, so the wrapping line lives
# in your config. Two bases may not define the same key, so this piece only
# holds keys an mmpretrain config does not: if yours has `custom_imports`,
# drop this base and add 'afd_mm' to your imports instead.
# `afd_mm::` paths resolve once afd_mm is imported (afd_mm's tools/train.py
# and tools/test.py do); with mmpretrain's own tools, write the line below
# in your config instead of listing this base.
custom_imports = dict(imports=['afd_mm'], allow_failed_imports=False)
