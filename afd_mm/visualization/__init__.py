"""Pure drawing functions: link matrices (Fig. 3), activations (Fig. 4)."""
from .activations import draw_activations
from .link_matrix import (
    draw_link_matrix,
    draw_link_strip,
    link_matrix_figure,
    link_strip_figure,
    select_strip_epochs,
    short_names,
)

__all__ = ['draw_activations', 'draw_link_matrix', 'draw_link_strip',
           'link_matrix_figure', 'link_strip_figure', 'select_strip_epochs',
           'short_names']
