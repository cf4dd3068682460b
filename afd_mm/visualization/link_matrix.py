"""Draw AFD link matrices the way the paper's Fig. 3 lays them out.

alpha has shape (T, S): row t holds teacher candidate t's weights over the
S student candidates (a softmax over s). The paper draws it transposed:
teacher candidates on the columns, student candidates on the rows, so every
drawing here is S rows x T columns. Pure functions: arrays in, an RGB
``uint8`` image (H, W, 3) out, no file I/O.

The layout is computed in pixels (:func:`heatmap_box`), so each cell is a
``CELL_PX`` square whatever T and S are: a wider network gives a wider
image, a deeper student a taller one.
"""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
CELL_PX = 24  # side of one (student s, teacher t) cell
FONT_PT = 7
_CHAR_PX = 6  # width of one tick-label character at FONT_PT
_AXIS_LABEL_PX = 28  # room for 'teacher/student candidate'
_TITLE_PX = 30
COLORBAR_PX = 84  # gap + bar + tick labels + 'alpha', right of the maps
COLORBAR_LABEL = 'alpha'  # the colour scale: link weights, rows sum to 1
_BAR_PX = 12
_PAD_PX = 10


def short_names(names: Sequence[str]) -> List[str]:
    """Drop the dotted prefix all names share (``backbone.`` -> nothing).

    ``['backbone.layer1.0', 'backbone.layer2.0']`` gives ``['layer1.0',
    'layer2.0']``; at least the last dotted part of each name is kept.
    """
    parts = [str(n).split('.') for n in names]
    if not parts:
        return []
    common = 0
    while (all(len(p) > common + 1 for p in parts)
           and len({p[common] for p in parts}) == 1):
        common += 1
    return ['.'.join(p[common:]) for p in parts]


def _labels(names: Optional[Sequence[str]], num: int,
            side: str) -> List[str]:
    """Tick labels: shortened names, or indices when names are None."""
    if names is None:
        return [str(i) for i in range(num)]
    if len(names) != num:
        raise ValueError(
            f'Got {len(names)} {side} names for {num} {side} candidates '
            f'(alpha is T x S = teacher x student); pass one name per '
            f'{side} candidate in `{side}_names`, or None for indices.')
    return short_names(names)


def _check_alpha(alpha) -> np.ndarray:
    alpha = np.asarray(alpha, dtype=np.float64)
    if alpha.ndim != 2 or 0 in alpha.shape:
        raise ValueError(
            f'alpha must be a (T, S) link matrix (teacher x student '
            f'candidates), got an array of shape {alpha.shape}.')
    return alpha


def _label_px(labels: Sequence[str]) -> int:
    return max(len(s) for s in labels) * _CHAR_PX + 8


def heatmap_box(num_t: int, num_s: int,
                teacher_labels: Sequence[str] = (),
                student_labels: Sequence[str] = ()) -> Dict[str, int]:
    """Pixel layout of one heatmap panel (S rows x T columns).

    Args:
        num_t (int): T, the number of teacher candidates (columns).
        num_s (int): S, the number of student candidates (rows).
        teacher_labels (Sequence[str]): the column tick labels as drawn.
            Default: indices.
        student_labels (Sequence[str]): the row tick labels as drawn.
            Default: indices.

    Returns:
        dict: ``left``, ``top``, ``width`` (T * CELL_PX), ``height``
        (S * CELL_PX) of the heatmap inside the panel, and the panel's
        ``panel_width`` / ``panel_height``, all in pixels.
    """
    t_labels = list(teacher_labels) or [str(num_t - 1)]
    s_labels = list(student_labels) or [str(num_s - 1)]
    left = _AXIS_LABEL_PX + _label_px(s_labels)
    bottom = _AXIS_LABEL_PX + _label_px(t_labels)
    width, height = num_t * CELL_PX, num_s * CELL_PX
    return dict(left=left, top=_TITLE_PX, width=width, height=height,
                panel_width=left + width + _PAD_PX,
                panel_height=_TITLE_PX + height + bottom)


def _new_figure(width_px: int, height_px: int) -> Figure:
    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI,
                  facecolor='white')


def _axes(fig: Figure, box: Tuple[int, int, int, int], size: Tuple[int, int]):
    """Axes at ``box`` = (left, top, width, height) pixels of a fig."""
    left, top, width, height = box
    fig_w, fig_h = size
    return fig.add_axes((left / fig_w, 1 - (top + height) / fig_h,
                         width / fig_w, height / fig_h))


def _draw_heatmap(ax, alpha: np.ndarray, t_labels, s_labels, title,
                  vmax: float, cmap: str, row_labels: bool = True):
    """alpha (T, S) drawn transposed: S rows x T columns."""
    image = ax.imshow(alpha.T, cmap=cmap, vmin=0.0, vmax=vmax,
                      aspect='auto', interpolation='nearest')  # (S, T)
    ax.set_xticks(range(len(t_labels)))
    ax.set_xticklabels(t_labels, rotation=90, fontsize=FONT_PT)
    ax.set_yticks(range(len(s_labels)))
    ax.set_yticklabels(s_labels if row_labels else [], fontsize=FONT_PT)
    ax.set_xlabel('teacher candidate', fontsize=FONT_PT + 1)
    if row_labels:
        ax.set_ylabel('student candidate', fontsize=FONT_PT + 1)
    if title:
        ax.set_title(title, fontsize=FONT_PT + 2)
    return image


def _colorbar(fig: Figure, image, left: int, top: int, height: int,
              size: Tuple[int, int]) -> None:
    cax = _axes(fig, (left + _PAD_PX, top, _BAR_PX, height), size)
    bar = fig.colorbar(image, cax=cax)
    bar.ax.tick_params(labelsize=FONT_PT)
    bar.set_label(COLORBAR_LABEL, fontsize=FONT_PT + 1)


def _to_rgb(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3)


def _vmax(alphas: Sequence[np.ndarray], vmax: Optional[float]) -> float:
    if vmax is not None:
        return float(vmax)
    top = max(float(a.max()) for a in alphas)
    return top if top > 0 else 1.0


def draw_link_matrix(alpha,
                     teacher_names: Optional[Sequence[str]] = None,
                     student_names: Optional[Sequence[str]] = None,
                     title: Optional[str] = None,
                     vmax: Optional[float] = None,
                     cmap: str = 'viridis') -> np.ndarray:
    """One link-matrix heatmap, laid out as the paper's Fig. 3.

    :func:`link_matrix_figure` rasterised; see it for the arguments.

    Returns:
        np.ndarray: the RGB image, ``uint8`` (H, W, 3); the heatmap sits
        in ``heatmap_box(T, S, ...)``, with a colour bar labelled
        ``alpha`` on its right.
    """
    return _to_rgb(link_matrix_figure(alpha, teacher_names, student_names,
                                      title, vmax, cmap))


def link_matrix_figure(alpha,
                       teacher_names: Optional[Sequence[str]] = None,
                       student_names: Optional[Sequence[str]] = None,
                       title: Optional[str] = None,
                       vmax: Optional[float] = None,
                       cmap: str = 'viridis') -> Figure:
    """One link-matrix heatmap as a matplotlib Figure (e.g. to save SVG).

    Args:
        alpha (array-like): the (T, S) link matrix, e.g. alpha averaged
            over the samples of an epoch.
        teacher_names (Sequence[str], optional): the T teacher candidate
            module names (column ticks; their shared prefix is dropped).
            Default: indices.
        student_names (Sequence[str], optional): the S student candidate
            names (row ticks). Default: indices.
        title (str, optional): drawn above the heatmap.
        vmax (float, optional): the colour scale's top. Default: the
            largest entry of ``alpha``. The scale starts at 0.
        cmap (str): a matplotlib colour map name. Default: 'viridis'.

    Returns:
        Figure: the heatmap in ``heatmap_box(T, S, ...)`` (pixels at
        ``DPI``), with a colour bar labelled ``alpha`` on its right.
    """
    alpha = _check_alpha(alpha)
    num_t, num_s = alpha.shape
    t_labels = _labels(teacher_names, num_t, 'teacher')
    s_labels = _labels(student_names, num_s, 'student')
    box = heatmap_box(num_t, num_s, t_labels, s_labels)
    size = (box['panel_width'] + COLORBAR_PX, box['panel_height'])
    fig = _new_figure(*size)
    ax = _axes(fig, (box['left'], box['top'], box['width'], box['height']),
               size)
    image = _draw_heatmap(ax, alpha, t_labels, s_labels, title,
                          _vmax([alpha], vmax), cmap)
    _colorbar(fig, image, box['left'] + box['width'], box['top'],
              box['height'], size)
    return fig


def draw_link_strip(alphas: Mapping[int, object],
                    teacher_names: Optional[Sequence[str]] = None,
                    student_names: Optional[Sequence[str]] = None,
                    cmap: str = 'viridis') -> np.ndarray:
    """Link matrices of several epochs side by side, one shared scale.

    :func:`link_strip_figure` rasterised; see it for the arguments.

    Returns:
        np.ndarray: the RGB image, ``uint8`` (H, W, 3): one panel of
        ``heatmap_box(...)['panel_width']`` pixels per epoch, then one
        colour bar labelled ``alpha``.
    """
    return _to_rgb(link_strip_figure(alphas, teacher_names, student_names,
                                     cmap))


def link_strip_figure(alphas: Mapping[int, object],
                      teacher_names: Optional[Sequence[str]] = None,
                      student_names: Optional[Sequence[str]] = None,
                      cmap: str = 'viridis') -> Figure:
    """The epochs' link matrices side by side as a matplotlib Figure.

    Args:
        alphas (Mapping[int, array-like]): epoch -> its (T, S) link
            matrix; panels are drawn in increasing epoch order, each S
            rows x T columns with the title ``epoch <e>``.
        teacher_names (Sequence[str], optional): as in
            :func:`draw_link_matrix`. Default: indices.
        student_names (Sequence[str], optional): as in
            :func:`draw_link_matrix`; only the first panel shows them.
            Default: indices.
        cmap (str): a matplotlib colour map name. Default: 'viridis'.

    Returns:
        Figure: one panel of ``heatmap_box(...)['panel_width']`` pixels per
        epoch, then one colour bar labelled ``alpha``.
    """
    if not alphas:
        raise ValueError('draw_link_strip got no link matrices; pass a '
                         'dict {epoch: (T, S) array} with at least one.')
    epochs = sorted(alphas)
    mats = [_check_alpha(alphas[e]) for e in epochs]
    shapes = {m.shape for m in mats}
    if len(shapes) != 1:
        raise ValueError(
            f'All link matrices of a strip must have one (T, S) shape, got '
            f'{sorted(shapes)}; were they saved by different runs?')
    num_t, num_s = mats[0].shape
    t_labels = _labels(teacher_names, num_t, 'teacher')
    s_labels = _labels(student_names, num_s, 'student')
    box = heatmap_box(num_t, num_s, t_labels, s_labels)
    size = (len(mats) * box['panel_width'] + COLORBAR_PX,
            box['panel_height'])
    fig = _new_figure(*size)
    vmax = _vmax(mats, None)
    for i, (epoch, alpha) in enumerate(zip(epochs, mats)):
        left = i * box['panel_width'] + box['left']
        ax = _axes(fig, (left, box['top'], box['width'], box['height']),
                   size)
        image = _draw_heatmap(ax, alpha, t_labels, s_labels,
                              f'epoch {epoch}', vmax, cmap,
                              row_labels=i == 0)
    _colorbar(fig, image, left + box['width'], box['top'], box['height'],
              size)
    return fig


def select_strip_epochs(epochs: Sequence[int],
                        max_panels: int) -> List[int]:
    """At most ``max_panels`` epochs, evenly spaced, first and last kept.

    Args:
        epochs (Sequence[int]): the epochs that have a link matrix.
        max_panels (int): the most panels a strip may have (>= 1); the
            last epoch is always kept.
    """
    epochs = sorted(epochs)
    if max_panels < 1:
        raise ValueError(f'max_panels={max_panels!r} must be >= 1.')
    if len(epochs) <= max_panels:
        return epochs
    if max_panels == 1:
        return epochs[-1:]
    picks = np.linspace(0, len(epochs) - 1, max_panels).round().astype(int)
    return [epochs[i] for i in sorted(set(picks.tolist()))]
