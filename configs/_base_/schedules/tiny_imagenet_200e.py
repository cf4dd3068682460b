# The AFD paper's TinyImageNet recipe: SGD 0.1 (momentum 0.9, wd 5e-4),
# x0.2 at epochs 60/120/150/180, 200 epochs, batch 128.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[60, 120, 150, 180],
    gamma=0.2)
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)
