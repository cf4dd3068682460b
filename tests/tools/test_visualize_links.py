"""tools/visualize_links.py redraws what LinkMatrixHook saved."""
import json
import os
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
from conftest import REPO

from afd_mm.visualization.link_matrix import (
    COLORBAR_PX,
    draw_link_matrix,
    heatmap_box,
    short_names,
)

sys.path.insert(0, osp.join(REPO, 'tools'))
import visualize_links  # noqa: E402

T_NAMES = [f'backbone.layer{i // 2 + 1}.{i % 2}' for i in range(6)]
S_NAMES = ['backbone.layer1.0', 'backbone.layer2.0']


def _work_dir(tmp_path, epochs=(1, 2, 3), names=True):
    links = tmp_path / 'links'
    os.makedirs(links)
    rng = np.random.RandomState(0)
    alphas = {}
    for epoch in epochs:
        alphas[epoch] = rng.dirichlet(np.ones(2), 6).astype(np.float32)
        np.save(links / f'epoch_{epoch}.npy', alphas[epoch])
    if names:
        with open(links / 'names.json', 'w') as f:
            json.dump({'teacher': T_NAMES, 'student': S_NAMES}, f)
    return str(tmp_path), alphas


def _read(path):
    return mmcv.imread(path, channel_order='rgb')


def test_redraws_every_epoch_with_names_and_the_strip(tmp_path):
    work_dir, alphas = _work_dir(tmp_path)
    out = tmp_path / 'out'
    written = visualize_links.main([work_dir, '--out-dir', str(out)])
    assert sorted(osp.basename(p) for p in written) == [
        'link_matrix_epoch_1.png', 'link_matrix_epoch_2.png',
        'link_matrix_epoch_3.png', 'links_strip.png']
    np.testing.assert_array_equal(
        _read(str(out / 'link_matrix_epoch_2.png')),
        draw_link_matrix(alphas[2], T_NAMES, S_NAMES, 'epoch 2'))
    box = heatmap_box(6, 2, short_names(T_NAMES), short_names(S_NAMES))
    strip = _read(str(out / 'links_strip.png'))
    assert strip.shape[:2] == (box['panel_height'],
                               3 * box['panel_width'] + COLORBAR_PX)


def test_without_names_uses_indices_and_max_panels(tmp_path):
    work_dir, alphas = _work_dir(tmp_path, epochs=(1, 2, 3, 4), names=False)
    visualize_links.main([work_dir, '--max-panels', '2'])
    links = tmp_path / 'links'
    np.testing.assert_array_equal(
        _read(str(links / 'link_matrix_epoch_4.png')),
        draw_link_matrix(alphas[4], title='epoch 4'))
    box = heatmap_box(6, 2)
    strip = _read(str(links / 'links_strip.png'))
    assert strip.shape[1] == 2 * box['panel_width'] + COLORBAR_PX


def test_no_npy_says_where_and_how_to_produce_them(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        visualize_links.main([str(tmp_path)])
    message = str(err.value)
    assert osp.join(str(tmp_path), 'links') in message
    assert "custom_hooks = [dict(type='afd_mm.LinkMatrixHook')]" in message
