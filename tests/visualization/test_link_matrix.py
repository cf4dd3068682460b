"""The link-matrix drawings: S rows x T columns, as the paper's Fig. 3."""
import matplotlib
import numpy as np
import pytest

from afd_mm.visualization.link_matrix import (
    CELL_PX,
    COLORBAR_PX,
    draw_link_matrix,
    draw_link_strip,
    heatmap_box,
    select_strip_epochs,
    short_names,
)

VIRIDIS = matplotlib.colormaps['viridis']


def _cell(image, box, t, s, panel=0):
    """The RGB pixel at the centre of cell (student s, teacher t)."""
    x = panel * box['panel_width'] + box['left'] + t * CELL_PX + CELL_PX // 2
    y = box['top'] + s * CELL_PX + CELL_PX // 2
    return image[y, x].astype(int)


def _colour(value):
    return (np.array(VIRIDIS(value)[:3]) * 255).round().astype(int)


def _one_hot_links(num_t=6, num_s=2):
    """Teacher num_t-1 linked to student 0, every other teacher to 1."""
    alpha = np.zeros((num_t, num_s))
    alpha[:-1, 1] = 1.0
    alpha[-1, 0] = 1.0
    return alpha  # (T, S)


def test_heatmap_is_alpha_transposed_cell_by_cell():
    alpha = _one_hot_links()
    image = draw_link_matrix(alpha, title='epoch 1')
    box = heatmap_box(6, 2)
    assert image.dtype == np.uint8 and image.shape[2] == 3
    for t in range(6):
        for s in range(2):
            assert np.abs(_cell(image, box, t, s)
                          - _colour(alpha[t, s])).max() <= 2, (t, s)


def test_columns_are_teachers_and_rows_students():
    base = draw_link_matrix(np.full((6, 2), 0.5))
    wider = draw_link_matrix(np.full((7, 2), 0.5))  # one more teacher
    taller = draw_link_matrix(np.full((6, 3), 0.5))  # one more student
    assert base.shape[1] > base.shape[0]  # 2 rows x 6 columns: wide
    assert wider.shape[0] == base.shape[0]
    assert wider.shape[1] - base.shape[1] == CELL_PX
    assert taller.shape[1] == base.shape[1]
    assert taller.shape[0] - base.shape[0] == CELL_PX
    box = heatmap_box(6, 2)
    assert base.shape[:2] == (box['panel_height'],
                              box['panel_width'] + COLORBAR_PX)


def test_names_become_tick_labels_and_widen_margins():
    t_names = [f'backbone.layer{i}.0' for i in range(1, 7)]
    s_names = ['backbone.layer1.0', 'backbone.layer3.0']
    named = draw_link_matrix(np.full((6, 2), 0.5), t_names, s_names)
    plain = draw_link_matrix(np.full((6, 2), 0.5))
    box = heatmap_box(6, 2, short_names(t_names), short_names(s_names))
    assert named.shape[:2] == (box['panel_height'],
                               box['panel_width'] + COLORBAR_PX)
    assert named.shape[0] > plain.shape[0] and named.shape[1] > plain.shape[1]


def test_short_names_drop_the_shared_prefix():
    assert short_names(['backbone.layer1.0', 'backbone.layer2.1']) == \
        ['layer1.0', 'layer2.1']
    assert short_names(['backbone.layer1.0']) == ['0']
    assert short_names(['a.x', 'b.x']) == ['a.x', 'b.x']


def test_strip_orders_epochs_and_shares_one_scale():
    half = np.full((6, 2), 0.25)
    half[0, 0] = 0.5
    strip = draw_link_strip({3: _one_hot_links(), 1: half})
    box = heatmap_box(6, 2)
    assert strip.shape[:2] == (box['panel_height'],
                               2 * box['panel_width'] + COLORBAR_PX)
    # panel 0 is epoch 1, drawn on the scale of the max over all epochs (1)
    assert np.abs(_cell(strip, box, 0, 0) - _colour(0.5)).max() <= 2
    assert np.abs(_cell(strip, box, 5, 0, panel=1) - _colour(1.0)).max() <= 2
    assert np.abs(_cell(strip, box, 5, 1, panel=1) - _colour(0.0)).max() <= 2


@pytest.mark.parametrize('epochs,max_panels,expected', [
    ([1, 2, 3], 8, [1, 2, 3]),
    (list(range(1, 241)), 4, [1, 81, 160, 240]),
    ([5, 1, 3], 1, [5]),
    ([1, 2, 3, 4, 5], 3, [1, 3, 5]),
])
def test_select_strip_epochs(epochs, max_panels, expected):
    assert select_strip_epochs(epochs, max_panels) == expected


def test_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match=r'\(T, S\) link matrix'):
        draw_link_matrix(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match='Got 2 teacher names for 6'):
        draw_link_matrix(np.zeros((6, 2)), teacher_names=['a', 'b'])
    with pytest.raises(ValueError, match='got no link matrices'):
        draw_link_strip({})
    with pytest.raises(ValueError, match='one \\(T, S\\) shape'):
        draw_link_strip({1: np.zeros((6, 2)), 2: np.zeros((2, 6))})
    with pytest.raises(ValueError, match='must be >= 1'):
        select_strip_epochs([1, 2], 0)


@pytest.mark.parametrize('draw', ['matrix', 'strip'])
def test_colour_bar_is_labelled_alpha_inside_the_image(draw):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from afd_mm.visualization.link_matrix import (
        link_matrix_figure,
        link_strip_figure,
    )
    alpha = _one_hot_links(num_t=3, num_s=2)
    fig = link_matrix_figure(alpha) if draw == 'matrix' else \
        link_strip_figure({1: alpha, 2: alpha})
    bar_ax = fig.axes[-1]  # the colour bar's axes come last
    assert bar_ax.get_ylabel() == 'alpha'
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    label = bar_ax.yaxis.label.get_window_extent(canvas.get_renderer())
    width, height = canvas.get_width_height()
    assert 0 <= label.x0 and label.x1 <= width  # not cut off on the right
    assert 0 <= label.y0 and label.y1 <= height
    ticks = [t.get_window_extent(canvas.get_renderer())
             for t in bar_ax.get_yticklabels() if t.get_text()]
    assert ticks and label.x0 >= max(t.x1 for t in ticks)  # not over them
