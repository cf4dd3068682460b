# A tiny AFD run for tests: the shipped R56 -> R20 config with small nets
# (CIFAR ResNet-14 -> ResNet-8), the test-only CIFAR-100 fixture reader
# (tests/cifar_fixture.py, no md5 check), batch 4, 2 epochs, no workers.
# Data root from $AFD_TEST_DATA (write it with cifar_fixture.write_cifar100);
# `tests/` must be importable (PYTHONPATH) for `cifar_fixture`.
_base_ = '../../configs/afd_r56_r20_cifar100.py'

custom_imports = dict(imports=['afd_mm', 'cifar_fixture'])
data_root = '{{$AFD_TEST_DATA:data/cifar100}}'

model = dict(
    student=dict(backbone=dict(depth=8)),
    teacher=dict(
        _delete_=True,
        type='ImageClassifier',
        backbone=dict(type='afd_mm.CifarResNet', depth=14),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=100, in_channels=64)),
    teacher_ckpt=None,
)
_loader = dict(batch_size=4, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    **_loader, dataset=dict(type='CIFAR100Fixture', data_root=data_root))
val_dataloader = dict(
    **_loader, dataset=dict(type='CIFAR100Fixture', data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=5))
