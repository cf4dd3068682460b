"""Draw channel-pooled activation maps over an image (the paper's Fig. 4).

Two rows: the teacher's T candidates on top, the student's S candidates
below, one column per candidate in network order (max(T, S) columns; the
shorter row leaves its last panels empty). Each panel shows the image with
one candidate's spatial map v(h) (e.g. 'a2', the mean over C of h ** 2)
stretched to [0, 1] and laid over it. Pure function: arrays in, an RGB
``uint8`` image out, no file I/O.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from .link_matrix import DPI, FONT_PT, _axes, _to_rgb, short_names

PANEL_PX = 96  # side of one image panel
_TITLE_PX = 16
_ROW_LABEL_PX = 24
_GAP_PX = 6
ROWS = ('teacher', 'student')


def panel_box(row: int, col: int) -> Dict[str, int]:
    """Pixel box of panel (row, col) in :func:`draw_activations`'s image.

    Args:
        row (int): 0 for the teacher row, 1 for the student row.
        col (int): the candidate's position in its row.

    Returns:
        dict: ``left``, ``top``, ``width``, ``height`` in pixels.
    """
    return dict(left=_ROW_LABEL_PX + _GAP_PX + col * (PANEL_PX + _GAP_PX),
                top=_TITLE_PX + row * (_TITLE_PX + PANEL_PX + _GAP_PX),
                width=PANEL_PX, height=PANEL_PX)


def _grid_size(num_cols: int) -> tuple:
    width = _ROW_LABEL_PX + _GAP_PX + num_cols * (PANEL_PX + _GAP_PX)
    return width, len(ROWS) * (_TITLE_PX + PANEL_PX + _GAP_PX)


def _stretch(v) -> np.ndarray:
    """A map (H, W) scaled to [0, 1] (all zeros if it is constant)."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(
            f'Each activation map must be 2-D (H, W), got shape {v.shape}; '
            'pool the channels first (e.g. spatial_descriptor(h, "a2")[0]).')
    span = v.max() - v.min()
    return (v - v.min()) / span if span > 0 else np.zeros_like(v)


def _check_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f'image must be an RGB array (H, W, 3), got shape {image.shape}.')
    return image


def _titles(names: Optional[Sequence[str]], num: int, side: str) -> List[str]:
    if names is None:
        return [f'{side} {i}' for i in range(num)]
    if len(names) != num:
        raise ValueError(
            f'Got {len(names)} {side} names for {num} {side} maps; pass one '
            f'name per map in `{side}_names`, or None for indices.')
    return short_names(names)


def _draw_panel(ax, image: np.ndarray, v: np.ndarray, title: str,
                cmap: str, opacity: float) -> None:
    height, width = image.shape[:2]
    ax.imshow(image, interpolation='bilinear')
    ax.imshow(_stretch(v), cmap=cmap, alpha=opacity, vmin=0.0, vmax=1.0,
              interpolation='bilinear',
              extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    ax.set_title(title, fontsize=FONT_PT, pad=2)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_activations(image,
                     teacher_maps: Sequence[object],
                     student_maps: Sequence[object],
                     teacher_names: Optional[Sequence[str]] = None,
                     student_names: Optional[Sequence[str]] = None,
                     cmap: str = 'jet',
                     opacity: float = 0.5) -> np.ndarray:
    """Teacher and student activation maps over one image, two rows.

    Args:
        image (np.ndarray): the input image, RGB ``uint8`` (H, W, 3).
        teacher_maps (Sequence[array-like]): the T teacher maps, each
            (H_t, W_t) (one sample's v(h), any resolution), in network
            order; each is stretched over the whole image.
        student_maps (Sequence[array-like]): the S student maps, each
            (H_s, W_s).
        teacher_names (Sequence[str], optional): panel titles of the top
            row (shared prefix dropped). Default: ``teacher <i>``.
        student_names (Sequence[str], optional): panel titles of the
            bottom row. Default: ``student <i>``.
        cmap (str): matplotlib colour map of the maps. Default: 'jet'.
        opacity (float): the maps' opacity over the image. Default: 0.5.

    Returns:
        np.ndarray: RGB ``uint8`` (H, W, 3), 2 rows x max(T, S) panels
        placed at :func:`panel_box`.
    """
    image = _check_image(image)
    rows = [(list(teacher_maps), _titles(teacher_names, len(teacher_maps),
                                         'teacher')),
            (list(student_maps), _titles(student_names, len(student_maps),
                                         'student'))]
    num_cols = max(len(rows[0][0]), len(rows[1][0]))
    if num_cols == 0:
        raise ValueError('draw_activations got no maps to draw.')
    size = _grid_size(num_cols)
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI,
                 facecolor='white')
    for r, (maps, titles) in enumerate(rows):
        _row_label(fig, r, size)
        for c, (v, title) in enumerate(zip(maps, titles)):
            box = panel_box(r, c)
            ax = _axes(fig, (box['left'], box['top'], box['width'],
                             box['height']), size)
            _draw_panel(ax, image, v, title, cmap, opacity)
    return _to_rgb(fig)


def _row_label(fig: Figure, row: int, size: tuple) -> None:
    box = panel_box(row, 0)
    y = 1 - (box['top'] + box['height'] / 2) / size[1]
    fig.text(_ROW_LABEL_PX / 2 / size[0], y, ROWS[row], rotation=90,
             ha='center', va='center', fontsize=FONT_PT + 1)
