# mmpretrain's runtime, plus afd_mm's components.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['afd_mm'], allow_failed_imports=False)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3,
                    save_last=True),
)
