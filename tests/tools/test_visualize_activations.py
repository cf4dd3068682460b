"""tools/visualize_activations.py: Fig. 4 from an AFD checkpoint."""
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from tiny_afd import train_tiny_afd

from afd_mm.models.distance import spatial_descriptor
from afd_mm.visualization.activations import draw_activations, panel_box

sys.path.insert(0, osp.join(REPO, 'tools'))
import visualize_activations  # noqa: E402


@pytest.fixture(scope='module')
def afd_run(tmp_path_factory):
    """One tiny AFD epoch: (runner, its config file, checkpoint, image)."""
    tmp = tmp_path_factory.mktemp('afd')
    runner, ckpt = train_tiny_afd(tmp, max_epochs=1)
    config = str(tmp / 'afd.py')
    runner.cfg.dump(config)
    image = str(tmp / 'bird.png')  # not at the probe size: resized
    rng = np.random.RandomState(0)
    mmcv.imwrite(rng.randint(0, 256, (48, 40, 3), dtype=np.uint8), image)
    return runner, config, ckpt, image


def test_writes_two_rows_of_teacher_and_student_maps(afd_run, tmp_path):
    runner, config, ckpt, image = afd_run
    out = visualize_activations.main(
        [config, ckpt, image, '--out', str(tmp_path / 'fig4.png')])
    drawn = mmcv.imread(out, channel_order='rgb')
    model = runner.model
    pixels = visualize_activations.load_image(image, (32, 32))
    t_maps, s_maps = visualize_activations.record_maps(model.eval(), pixels)
    assert (len(t_maps), len(s_maps)) == (6, 3)
    np.testing.assert_array_equal(drawn, draw_activations(
        pixels, t_maps, s_maps, model.teacher_recorder.names,
        model.student_recorder.names))
    # 2 rows x max(T, S) = 6 columns; the student row ends at column 3
    for row, col, blank in ((0, 5, False), (1, 2, False), (1, 3, True)):
        box = panel_box(row, col)
        panel = drawn[box['top']:box['top'] + box['height'],
                      box['left']:box['left'] + box['width']]
        assert bool((panel == 255).all()) == blank, (row, col)
    assert drawn.shape[1] < panel_box(0, 6)['left'] + 10


def test_maps_come_from_the_checkpoint_weights(afd_run):
    runner, config, ckpt, image = afd_run
    cfg = Config.fromfile(config)
    model = visualize_activations.build_distiller(cfg, ckpt)
    trained = runner.model.student.state_dict()
    for key, value in model.student.state_dict().items():
        assert torch.equal(value, trained[key]), key
    pixels = visualize_activations.load_image(image, (32, 32))
    assert pixels.shape == (32, 32, 3)
    t_maps, s_maps = visualize_activations.record_maps(model, pixels)
    assert [m.shape for m in t_maps] == [(32, 32)] * 2 + [(16, 16)] * 2 + \
        [(8, 8)] * 2
    assert [m.shape for m in s_maps] == [(32, 32), (16, 16), (8, 8)]
    inputs = model.data_preprocessor(
        {'inputs': [torch.from_numpy(pixels).permute(2, 0, 1)]})['inputs']
    with torch.no_grad(), model.student_recorder.record(raw=True) as feats:
        model.student(inputs, mode='tensor')
    np.testing.assert_allclose(s_maps[1],
                               spatial_descriptor(feats[1])[0].numpy())
    # a BGR-expecting preprocessor gets BGR pixels: same maps
    model.data_preprocessor.to_rgb = True
    _, s_bgr = visualize_activations.record_maps(model, pixels)
    np.testing.assert_allclose(s_bgr[0], s_maps[0])


def test_checkpoint_of_another_model_is_refused(afd_run, tmp_path):
    runner, config, ckpt, image = afd_run
    other = str(tmp_path / 'other.pth')
    torch.save({'state_dict': runner.model.student.state_dict()}, other)
    with pytest.raises(ValueError, match='does not fit the distiller'):
        visualize_activations.main([config, other, image])
    with pytest.raises(FileNotFoundError, match='does not exist'):
        visualize_activations.main([config, ckpt, str(tmp_path / 'no.png')])
