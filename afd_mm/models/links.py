"""Links that are not learnt: the linking ablations of paper Table 4.

``FixedLinks`` stands in for ``AFDAttention`` with a constant alpha (T, S):
'ordered' (teacher t to the proportional student), 'random' (one-hot,
drawn once) or 'fixed' (a matrix saved by an earlier run, e.g. its
averaged alpha), built by the pure function ``fixed_links``.
"""
import os.path as osp

import numpy as np
import torch
from torch import nn

from afd_mm.utils.checkpoint import load_checkpoint_file

__all__ = ['FIXED_LINKS', 'fixed_links', 'FixedLinks']

FIXED_LINKS = ('ordered', 'random', 'fixed')


def _ordered_indices(num_t, num_s):
    """Student linked to teacher t: round(t (S - 1) / (T - 1)), halves up."""
    if num_t == 1:
        return [num_s - 1]
    return [(2 * t * (num_s - 1) + num_t - 1) // (2 * (num_t - 1))
            for t in range(num_t)]


def _load_links(path, num_t, num_s):
    """A (T, S) link matrix from a .pt or .npy file, rows summing to 1."""
    if path is None:
        raise ValueError(
            "links='fixed' needs a file: set the `links_file` key of AFDLoss "
            f'to a .pt or .npy file holding a {num_t} x {num_s} link matrix.')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'links_file {path!r} does not exist; set the `links_file` key '
            f'of AFDLoss to a .pt or .npy file holding a {num_t} x {num_s} '
            f'link matrix.')
    if path.endswith('.pt') or path.endswith('.pth'):
        links = load_checkpoint_file(path, key='links_file')
    elif path.endswith('.npy'):
        try:
            links = torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as err:  # object arrays need pickle: refused
            raise ValueError(
                f'links_file {path!r} is not a plain numeric array ({err}); '
                f'save the {num_t} x {num_s} link matrix with '
                f'np.save(path, array.astype(np.float32)) and point the '
                f'`links_file` key of AFDLoss to it.') from None
    else:
        raise ValueError(
            f'links_file {path!r} has an unknown extension; use a .pt, .pth '
            f'or .npy file (the `links_file` key of AFDLoss).')
    if not isinstance(links, torch.Tensor):
        raise ValueError(
            f'links_file {path!r} holds a {type(links).__name__}, expected '
            f'a {num_t} x {num_s} tensor; point the `links_file` key of '
            f'AFDLoss to a saved link matrix.')
    if tuple(links.shape) != (num_t, num_s):
        raise ValueError(
            f'links_file {path!r} holds a matrix of shape '
            f'{tuple(links.shape)}, expected T x S = {num_t} x {num_s} '
            f'(teacher x student candidates); change the `links_file` key '
            f'of AFDLoss or the recorders so the counts match.')
    links = links.double()
    rows = links.sum(dim=1, keepdim=True)  # (T, 1)
    if (links < 0).any() or (rows <= 0).any():
        raise ValueError(
            f'links_file {path!r} must hold non-negative weights with a '
            f'positive sum in every row; change the `links_file` key of '
            f'AFDLoss.')
    return (links / rows).float()  # (T, S)


def fixed_links(mode, num_t, num_s, seed=0, path=None):
    """A constant link matrix for the linking ablations (paper Table 4).

    Args:
        mode (str): 'ordered': teacher t linked one-hot to the proportional
            student round(t (S - 1) / (T - 1)) (halves round up; T = 1
            links to the last student). 'random': each teacher linked
            one-hot to a student drawn once from a ``torch.Generator``
            seeded with ``seed``. 'fixed': the matrix saved in ``path``
            (.pt read with ``weights_only`` and our allow-list, or .npy),
            rows renormalised to sum to 1.
        num_t (int): T, the number of teacher candidates.
        num_s (int): S, the number of student candidates.
        seed (int): seed of the 'random' draw. Default: 0.
        path (str, optional): the file read by 'fixed'.

    Returns:
        Tensor: (T, S), float32, rows summing to 1.
    """
    if mode == 'fixed':
        return _load_links(path, num_t, num_s)
    if mode == 'ordered':
        indices = torch.tensor(_ordered_indices(num_t, num_s))
    elif mode == 'random':
        generator = torch.Generator().manual_seed(seed)
        indices = torch.randint(num_s, (num_t, ), generator=generator)
    else:
        raise ValueError(
            f'links={mode!r} is not a fixed-link mode; choose one of '
            f'{FIXED_LINKS} (the `links` key of AFDLoss).')
    return nn.functional.one_hot(indices, num_s).float()  # (T, S)


class FixedLinks(nn.Module):
    """Constant link weights, the same for every sample (ablations).

    Drop-in replacement for ``AFDAttention``: same forward arguments, same
    output shape, no parameters. The matrix is a non-persistent buffer: it
    is rebuilt from the config, never read from a checkpoint.

    Args:
        mode (str): 'ordered', 'random' or 'fixed'; see ``fixed_links``.
        num_t (int): T, the number of teacher candidates.
        num_s (int): S, the number of student candidates.
        seed (int): seed of the 'random' draw. Default: 0.
        path (str, optional): the .pt/.npy file read by 'fixed'. Default:
            None.
    """

    def __init__(self, mode, num_t, num_s, seed=0, path=None):
        super().__init__()
        self.mode = mode
        self.register_buffer(
            'links', fixed_links(mode, num_t, num_s, seed, path),
            persistent=False)  # (T, S)

    def forward(self, g_t, g_s):
        """The constant link matrix broadcast over the batch.

        Args:
            g_t (list[Tensor]): T teacher descriptors (B, C_t); only B is
                read.
            g_s (list[Tensor]): S student descriptors (B, C_s); unused.

        Returns:
            Tensor: alpha (B, T, S), a broadcast view without gradient.
        """
        batch = g_t[0].shape[0]
        return self.links.expand(batch, -1, -1)  # (B, T, S)
