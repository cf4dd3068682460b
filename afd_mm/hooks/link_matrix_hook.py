"""LinkMatrixHook: AFD's link matrices over training (the paper's Fig. 3)."""
import glob
import json
import logging
import os
import os.path as osp
import re
from typing import Dict, Optional

import mmcv
import numpy as np
import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from afd_mm.registry import HOOKS
from afd_mm.visualization.link_matrix import (
    draw_link_matrix,
    draw_link_strip,
    select_strip_epochs,
)

_EPOCH_FILE = re.compile(r'epoch_(\d+)\.npy$')


@HOOKS.register_module()
class LinkMatrixHook(Hook):
    """Save and draw alpha averaged over each epoch's training samples.

    Observe only: it reads ``distill_loss.last_alpha`` of the distiller
    (``AFDLoss``: the last batch's alpha averaged over its samples, a
    detached (T, S) tensor) after every training iteration and never
    changes the model or the batch. Add it to a config with::

        custom_hooks = [dict(type='afd_mm.LinkMatrixHook')]

    Every ``interval`` epochs (and at the last epoch) it writes, under
    ``<work_dir>/<out_dir>/``:

    * ``epoch_<e>.npy``: the epoch's mean alpha, float32 (T, S), rows
      summing to 1 (each batch weighted by its size, summed over all
      ranks). This file is the ``links_file`` of the 'fixed' link ablation
      (paper Table 4, links of an already trained AFD, frozen)::

          distill_loss=dict(type='afd_mm.AFDLoss', links='fixed',
              links_file='work_dirs/<run>/links/epoch_240.npy')

    * the heatmap, S student rows x T teacher columns as in Fig. 3, sent
      to ``runner.visualizer.add_image('link_matrix', img, step=e)``: it
      lands in ``<work_dir>/<timestamp>/vis_data/vis_image/
      link_matrix_<e>.png`` (and in TensorBoard or other backends the
      config's visualizer has).

    Once, before training: ``names.json``, ``{'teacher': [...],
    'student': [...]}`` the candidate module names (tick labels). After
    training: ``links_strip.png``, up to ``max_strip_panels`` saved epochs
    side by side on one colour scale (epochs saved before a resume count
    too). ``tools/visualize_links.py`` redraws all of these from the .npy
    files. A distiller whose loss has no ``last_alpha`` (a baseline loss,
    or none) gets one log line and nothing is saved. Every rank
    accumulates; only rank 0 writes and draws.

    Args:
        interval (int): save every ``interval`` epochs; the last epoch is
            always saved. Default: 1 (every epoch, as Fig. 3 needs).
        out_dir (str): folder of the files, relative to the runner's
            ``work_dir`` (or absolute). Default: 'links'.
        max_strip_panels (int): the most epochs drawn in
            ``links_strip.png``, evenly spaced, first and last kept.
            Default: 8.
        cmap (str): matplotlib colour map of the heatmaps. Default:
            'viridis'.
    """

    priority = 'LOW'

    def __init__(self,
                 interval: int = 1,
                 out_dir: str = 'links',
                 max_strip_panels: int = 8,
                 cmap: str = 'viridis') -> None:
        for key, value in (('interval', interval),
                           ('max_strip_panels', max_strip_panels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f'{key}={value!r} must be a positive int; change '
                    f'`{key}` of LinkMatrixHook in custom_hooks.')
        self.interval = interval
        self.out_dir = out_dir
        self.max_strip_panels = max_strip_panels
        self.cmap = cmap
        self.links_dir: Optional[str] = None
        self.names: Dict[str, Optional[list]] = dict(teacher=None,
                                                     student=None)
        self._loss = None
        self._sum: Optional[torch.Tensor] = None
        self._count = 0
        self._shape: Optional[tuple] = None

    # ------------------------------------------------------------ setup
    def before_train(self, runner) -> None:
        """Find the distiller's loss; write ``names.json`` once."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        loss = getattr(model, 'distill_loss', None)
        if loss is None or not hasattr(loss, 'last_alpha'):
            print_log(
                f'LinkMatrixHook: {type(model).__name__} has no '
                f'distill_loss with `last_alpha` (got '
                f'{type(loss).__name__}); no link matrices are saved.',
                logger='current', level=logging.WARNING)
            return
        self._loss = loss
        self.links_dir = osp.join(runner.work_dir, self.out_dir)
        for side in ('teacher', 'student'):
            names = getattr(getattr(model, f'{side}_recorder', None),
                            'names', None)
            self.names[side] = list(names) if names else None
        if runner.rank == 0:
            self._write_names()

    def _write_names(self) -> None:
        os.makedirs(self.links_dir, exist_ok=True)
        if self.names['teacher'] is None or self.names['student'] is None:
            return
        with open(osp.join(self.links_dir, 'names.json'), 'w') as f:
            json.dump(self.names, f, indent=2)

    # ----------------------------------------------------- accumulation
    def before_train_epoch(self, runner) -> None:
        """Start a new running sum."""
        self._sum, self._count = None, 0

    def after_train_iter(self, runner, batch_idx: int,
                         data_batch=None, outputs=None) -> None:
        """Add the batch's alpha (T, S), weighted by its size."""
        if self._loss is None or self._loss.last_alpha is None:
            return
        num = _batch_size(data_batch)
        alpha = self._loss.last_alpha.detach().double()  # stays on device
        self._sum = alpha * num if self._sum is None \
            else self._sum + alpha * num  # (T, S)
        self._count += num

    def _epoch_mean(self) -> Optional[np.ndarray]:
        """The mean alpha over this epoch's samples on all ranks."""
        if self._sum is None:
            return None
        total = torch.cat([self._sum.flatten(),
                           self._sum.new_tensor([self._count])])
        if get_world_size() > 1:
            all_reduce(total, op='sum')
        mean = total[:-1] / total[-1]
        return mean.reshape(self._sum.shape).float().cpu().numpy()  # (T, S)

    # ----------------------------------------------------------- output
    def after_train_epoch(self, runner) -> None:
        """Save the epoch's mean alpha and send its heatmap (rank 0)."""
        if self._loss is None or not (
                self.every_n_epochs(runner, self.interval)
                or self.is_last_train_epoch(runner)):
            return
        mean = self._epoch_mean()  # every rank joins the all-reduce
        if mean is None or runner.rank != 0:
            return
        epoch = runner.epoch + 1
        self._shape = mean.shape
        np.save(osp.join(self.links_dir, f'epoch_{epoch}.npy'), mean)
        image = draw_link_matrix(mean, self.names['teacher'],
                                 self.names['student'], f'epoch {epoch}',
                                 cmap=self.cmap)
        runner.visualizer.add_image('link_matrix', image, step=epoch)

    def after_train(self, runner) -> None:
        """Draw ``links_strip.png`` from every saved epoch (rank 0)."""
        if self._loss is None or runner.rank != 0:
            return
        alphas = {e: a for e, a in load_link_matrices(self.links_dir).items()
                  if a.shape == self._shape}  # not another run's leftovers
        if not alphas:
            return
        keep = select_strip_epochs(list(alphas), self.max_strip_panels)
        strip = draw_link_strip({e: alphas[e] for e in keep},
                                self.names['teacher'],
                                self.names['student'], cmap=self.cmap)
        path = osp.join(self.links_dir, 'links_strip.png')
        mmcv.imwrite(mmcv.rgb2bgr(strip), path)
        print_log(f'LinkMatrixHook: link matrices of {len(alphas)} epochs '
                  f'in {self.links_dir}, strip in {path}.',
                  logger='current')


def _batch_size(data_batch) -> int:
    """Samples in an mmengine data batch (1 when it cannot tell)."""
    if isinstance(data_batch, dict):
        for key in ('data_samples', 'inputs'):
            value = data_batch.get(key)
            if value is not None and hasattr(value, '__len__'):
                return max(len(value), 1)
    return 1


def load_link_matrices(links_dir: str) -> Dict[int, np.ndarray]:
    """Read every ``epoch_<e>.npy`` of a folder: {epoch: (T, S) array}."""
    alphas = {}
    for path in glob.glob(osp.join(links_dir, 'epoch_*.npy')):
        match = _EPOCH_FILE.search(osp.basename(path))
        if match:
            alphas[int(match.group(1))] = np.load(path, allow_pickle=False)
    return dict(sorted(alphas.items()))
