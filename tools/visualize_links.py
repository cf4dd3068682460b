"""Redraw the link matrices an AFD run saved (the paper's Fig. 3).

Reads ``<WORK_DIR>/links/epoch_<e>.npy`` (written by ``LinkMatrixHook``)
and, when present, the candidate names in ``<WORK_DIR>/links/names.json``;
writes one heatmap per epoch (``link_matrix_epoch_<e>.png``) and the strip
of all epochs (``links_strip.png``)::

    python tools/visualize_links.py WORK_DIR [--out-dir DIR]
        [--max-panels N] [--cmap NAME]
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))  # known_warnings
from known_warnings import ignore_known_warnings  # noqa: E402

ignore_known_warnings()  # before mmengine/mmcv/mmpretrain are imported

import mmcv  # noqa: E402
from mmengine.logging import print_log  # noqa: E402

from afd_mm.hooks.link_matrix_hook import load_link_matrices  # noqa: E402
from afd_mm.visualization.link_matrix import (  # noqa: E402
    draw_link_matrix,
    draw_link_strip,
    select_strip_epochs,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Redraw the link matrices saved by LinkMatrixHook')
    parser.add_argument('work_dir', help='the AFD run\'s work dir (holds '
                        'links/epoch_<e>.npy)')
    parser.add_argument('--out-dir', help='where the images go (default: '
                        '<WORK_DIR>/links)')
    parser.add_argument('--max-panels', type=int, default=None,
                        help='the most epochs in the strip, evenly spaced '
                        '(default: all)')
    parser.add_argument('--cmap', default='viridis',
                        help='matplotlib colour map (default: viridis)')
    return parser.parse_args(argv)


def read_names(links_dir: str):
    """(teacher names, student names) from names.json, or (None, None)."""
    path = osp.join(links_dir, 'names.json')
    if not osp.isfile(path):
        return None, None
    with open(path) as f:
        names = json.load(f)
    return names.get('teacher'), names.get('student')


def load_links(work_dir: str) -> dict:
    """{epoch: (T, S) array} of a work dir, or a clear error."""
    links_dir = osp.join(work_dir, 'links')
    alphas = load_link_matrices(links_dir)
    if not alphas:
        raise FileNotFoundError(
            f'No link matrices (epoch_<e>.npy) found in {links_dir!r}. They '
            'are written by LinkMatrixHook during an AFD training run: add '
            "`custom_hooks = [dict(type='afd_mm.LinkMatrixHook')]` to the "
            'config (or --cfg-options) and train, then pass that run\'s '
            'work dir.')
    return alphas


def main(argv=None):
    args = parse_args(argv)
    links_dir = osp.join(args.work_dir, 'links')
    alphas = load_links(args.work_dir)
    t_names, s_names = read_names(links_dir)
    out_dir = args.out_dir or links_dir
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for epoch, alpha in alphas.items():
        image = draw_link_matrix(alpha, t_names, s_names, f'epoch {epoch}',
                                 cmap=args.cmap)
        written.append(osp.join(out_dir, f'link_matrix_epoch_{epoch}.png'))
        mmcv.imwrite(mmcv.rgb2bgr(image), written[-1])
    keep = select_strip_epochs(list(alphas), args.max_panels or len(alphas))
    strip = draw_link_strip({e: alphas[e] for e in keep}, t_names, s_names,
                            cmap=args.cmap)
    written.append(osp.join(out_dir, 'links_strip.png'))
    mmcv.imwrite(mmcv.rgb2bgr(strip), written[-1])
    print_log(f'Wrote {len(written)} images to {out_dir}.', logger='current')
    return written


if __name__ == '__main__':
    main()
