"""The activation drawing: 2 rows (teacher, student) x max(T, S) panels."""
import numpy as np
import pytest

from afd_mm.visualization.activations import (
    PANEL_PX,
    draw_activations,
    panel_box,
)

GREY = np.full((32, 32, 3), 128, np.uint8)


def _maps(num, size=8):
    return [np.random.RandomState(i).rand(size, size) for i in range(num)]


def _panel(image, row, col):
    box = panel_box(row, col)
    return image[box['top']:box['top'] + box['height'],
                 box['left']:box['left'] + box['width']]


def _is_blank(panel):
    return bool((panel == 255).all())


@pytest.mark.parametrize('num_t,num_s', [(4, 2), (2, 4)])
def test_two_rows_of_max_t_s_columns(num_t, num_s):
    image = draw_activations(GREY, _maps(num_t), _maps(num_s))
    last = panel_box(1, 3)
    assert image.dtype == np.uint8
    assert image.shape[0] >= last['top'] + last['height']
    assert image.shape[1] >= last['left'] + last['width']
    for col in range(4):
        assert _is_blank(_panel(image, 0, col)) == (col >= num_t)
        assert _is_blank(_panel(image, 1, col)) == (col >= num_s)


def test_width_grows_by_one_panel_per_column_height_fixed():
    four = draw_activations(GREY, _maps(4), _maps(2))
    five = draw_activations(GREY, _maps(2), _maps(5))
    assert five.shape[0] == four.shape[0]
    assert five.shape[1] - four.shape[1] == \
        panel_box(0, 1)['left'] - panel_box(0, 0)['left']
    assert panel_box(0, 1)['left'] - panel_box(0, 0)['left'] > PANEL_PX


def test_map_is_laid_over_the_image_unflipped():
    hot_corner = np.zeros((4, 4))
    hot_corner[0, 0] = 1.0  # top-left hot: jet red; the rest jet blue
    image = draw_activations(GREY, [hot_corner], [hot_corner[::-1]])
    top = _panel(image, 0, 0).astype(int)
    bottom = _panel(image, 1, 0).astype(int)
    top_left, bottom_left = (slice(2, 10), slice(2, 10)), \
        (slice(-10, -2), slice(2, 10))
    assert top[top_left][..., 0].mean() > top[top_left][..., 2].mean() + 40
    assert top[bottom_left][..., 2].mean() > top[bottom_left][..., 0].mean()
    assert bottom[bottom_left][..., 0].mean() > \
        bottom[bottom_left][..., 2].mean() + 40


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match='RGB array'):
        draw_activations(np.zeros((8, 8)), _maps(1), _maps(1))
    with pytest.raises(ValueError, match='must be 2-D'):
        draw_activations(GREY, [np.zeros((1, 4, 4))], _maps(1))
    with pytest.raises(ValueError, match='Got 1 student names for 2'):
        draw_activations(GREY, _maps(1), _maps(2), student_names=['a'])
    with pytest.raises(ValueError, match='no maps'):
        draw_activations(GREY, [], [])
