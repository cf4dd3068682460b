# A short CPU schedule: SGD 0.05 (momentum 0.9, wd 5e-4: the AFD paper's
# CIFAR values at batch 64), cosine decay per iteration to 0 over the
# training; the test set is evaluated once, after the last epoch. To change
# the length set train_cfg.max_epochs, train_cfg.val_interval and
# param_scheduler.T_max together (tools/demo.py does).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))
param_scheduler = dict(type='CosineAnnealingLR', by_epoch=True, T_max=10,
                       convert_to_iter_based=True)
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
