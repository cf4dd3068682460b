"""tools/save_links.py: the mean alpha of a trained tiny AFD run."""
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool
from mmengine.config import Config

import afd_mm  # noqa: F401  (registers)
from afd_mm.models.losses.afd_loss import AFDLoss
from afd_mm.registry import MODELS

TINY = osp.join(REPO, 'tests/data/afd_tiny_cifar.py')




@pytest.fixture
def save_links(trained, monkeypatch):
    monkeypatch.setenv('AFD_TEST_DATA', trained[0])
    return load_tool('save_links')


def test_saves_a_row_stochastic_t_by_s_matrix(trained, save_links):
    links = save_links.main([TINY, trained[1], '--device', 'cpu'])
    path = osp.join(osp.dirname(trained[1]), 'links.npy')
    assert np.array_equal(np.load(path), links)
    assert links.dtype == np.float32
    assert links.shape == (6, 3)  # ResNet-14 blocks x ResNet-8 blocks
    assert np.allclose(links.sum(axis=1), 1.0, atol=1e-5)
    assert not np.allclose(links, links[:, :1])  # not uniform: real alpha


def test_mean_over_samples_whatever_the_batches(trained, save_links,
                                                tmp_path):
    # eval mode: alpha of a sample does not depend on its batch, so uneven
    # batches (3 + 3 + 2) weighted by size give the one-batch mean
    outs = []
    for batch in (8, 3):
        out = str(tmp_path / f'links_{batch}.npy')
        outs.append(save_links.main([
            TINY, trained[1], '--out', out, '--device', 'cpu',
            '--cfg-options', f'train_dataloader.batch_size={batch}']))
    assert np.allclose(outs[0], outs[1], atol=1e-6)


def test_output_is_a_fixed_links_file(trained, save_links, tmp_path):
    out = str(tmp_path / 'sub' / 'alpha.npy')
    links = save_links.main([TINY, trained[1], '--out', out])
    shapes_t, shapes_s = [(16, 8, 8)] * 6, [(16, 8, 8)] * 3
    loss = AFDLoss(shapes_t, shapes_s, links='fixed', links_file=out)
    assert torch.allclose(loss.attention.links, torch.from_numpy(links),
                          atol=1e-6)


def test_refuses_a_checkpoint_of_another_model(trained, save_links):
    with pytest.raises(ValueError, match=r'does not fit the model of the '
                       r"config: missing keys \[\], unexpected keys "
                       r"\['distill_loss"):
        save_links.main([TINY, trained[1], '--cfg-options',
                         'model.distill_loss=None'])


def test_refuses_a_loss_without_alpha(trained, save_links, tmp_path):
    cfg = Config.fromfile(TINY)
    cfg.model.distill_loss = None
    cfg.model.teacher_ckpt = None
    ckpt = str(tmp_path / 'kd.pth')
    torch.save(dict(state_dict=MODELS.build(cfg.model).state_dict()), ckpt)
    with pytest.raises(ValueError, match=r'distill_loss is NoneType, which '
                       r'has no `last_alpha`: save_links needs an AFD run'):
        save_links.main([TINY, ckpt, '--cfg-options',
                         'model.distill_loss=None'])
