"""Every shipped config loads and builds (new configs are covered as added)
and the paper pairs have the candidates of spec section 1."""
import glob
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, require_mmdet
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from afd_mm.models.zoo_teacher import is_zoo_name, zoo_teacher

CONFIGS = sorted(
    osp.relpath(p, REPO)
    for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


DETECTION_FOLDERS = ('configs/detection/', 'configs/cwd/')


def build(cfg_path, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, cfg_path))
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = cfg.model
    if model_cfg.type == 'afd_mm.AFDDistiller':
        model_cfg.teacher_ckpt = None  # the real weights are not here
        teacher = model_cfg.teacher
        if isinstance(teacher, str) and is_zoo_name(teacher):  # no download
            model_cfg.teacher = zoo_teacher(teacher)[0]
        loss_cfg = model_cfg.get('distill_loss') or {}
        fixed = isinstance(loss_cfg, dict) and loss_cfg.get('links') == \
            'fixed'
        if fixed:  # links saved by an AFD run
            probe = MODELS.build(dict(model_cfg, distill_loss=dict(
                type='afd_mm.AFDLoss', links='ordered')))
            links = tmp_path / 'links.npy'
            np.save(links, np.random.rand(len(probe.teacher_recorder.names),
                                          len(probe.student_recorder.names)))
            loss_cfg.links_file = str(links)
    return cfg, MODELS.build(model_cfg)


def test_there_are_configs():
    assert len(CONFIGS) >= 17


@pytest.mark.parametrize('cfg_path', CONFIGS)
def test_config_builds(cfg_path, tmp_path):
    detection = cfg_path.startswith(DETECTION_FOLDERS)
    if detection:
        require_mmdet()
    cfg, model = build(cfg_path, tmp_path)
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper',
                'param_scheduler', 'train_cfg'):
        assert key in cfg, key
    assert cfg.default_scope == 'mmpretrain'
    assert 'afd_mm' in cfg.custom_imports.imports
    assert sum(p.numel() for p in model.parameters()) > 0
    student = getattr(model, 'student', model)
    num_classes = cfg.get('data_preprocessor', {}).get('num_classes')
    if num_classes is not None and hasattr(student.head, 'num_classes'):
        assert student.head.num_classes == num_classes


# (config, teacher candidates, student candidates, beta, kd weight)
PAPER_PAIRS = [
    ('configs/afd_r56_r20_cifar100.py', 27, 9, 200, 0.9),
    ('configs/afd_r110_r20_cifar100.py', 27, 9, 200, 0.9),
    ('configs/afd_r110_r56_cifar100.py', 27, 27, 200, 0.9),
    ('configs/afd_wrn40-2_wrn16-2_cifar100.py', 18, 6, 200, 0.9),
    ('configs/afd_wrn40-2_wrn40-2_cifar100.py', 18, 18, 200, 0.9),
    ('configs/afd_wrn40-2_r56_cifar100.py', 18, 27, 200, 0.9),
    ('configs/afd_r34_wrn28-2_cifar100.py', 16, 12, 200, 0.9),
    ('configs/afd_r34_r18_tiny_imagenet.py', 16, 8, 50, 0.9),
    ('configs/afd_r34_r34_tiny_imagenet.py', 16, 16, 50, 0.9),
    ('configs/afd_r34_r18_imagenet.py', 16, 8, 50, 0.9),
    ('configs/afd_r34_r18_cub200.py', 16, 8, 1000, 0.0),
    ('configs/afd_r34_r18_mit67.py', 16, 8, 1000, 0.0),
    ('configs/afd_r34_r18_stanford40.py', 16, 8, 1000, 0.0),
    ('configs/afd_r34_r18_stanford_dogs.py', 16, 8, 1000, 0.0),
]


@pytest.mark.parametrize('cfg_path,num_t,num_s,beta,kd', PAPER_PAIRS)
def test_paper_pair_candidates(cfg_path, num_t, num_s, beta, kd, tmp_path):
    _, model = build(cfg_path, tmp_path)
    assert len(model.teacher_recorder.names) == num_t
    assert len(model.student_recorder.names) == num_s
    assert model.distill_loss.loss_weight == beta
    assert model.kd_weight == kd
    shapes = model.distill_loss.attention.pos_t.shape
    assert tuple(shapes) == (num_t, 128)


def test_resnet110_takes_every_second_block(tmp_path):
    _, model = build('configs/afd_r110_r20_cifar100.py', tmp_path)
    names = model.teacher_recorder.names
    assert names[:2] == ['backbone.layer1.1', 'backbone.layer1.3']
    assert names[-1] == 'backbone.layer3.17'


def test_cifar_candidate_shapes(tmp_path):
    _, model = build('configs/afd_wrn40-2_wrn16-2_cifar100.py', tmp_path)
    import torch
    with model.teacher_recorder.record() as feats:
        model.teacher(torch.zeros(2, 3, 32, 32), mode='tensor')
    # AFD's recorders keep (g, v) of each map: C from g, (H, W) from v
    sizes = sorted({(f.g.shape[1], *f.v.shape[1:]) for f in feats})
    assert sizes == [(32, 32, 32), (64, 16, 16), (128, 8, 8)]
