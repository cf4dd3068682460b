# L2T's transfer protocol, used by the AFD paper (Table 3): ResNet-18 from
# scratch, 200 epochs, batch 64, SGD 0.1 (momentum 0.9, wd 1e-4), cosine.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=1e-4))
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, T_max=200, eta_min=0.0)
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
