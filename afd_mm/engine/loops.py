"""An epoch-based training loop that resumes exactly in mid-epoch."""
import random

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.runner import EpochBasedTrainLoop

from afd_mm.registry import LOOPS


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop``, resumable in the middle of an epoch.

    mmengine's loop restarts an interrupted epoch from its first batch while
    keeping the iteration count, so batches are trained twice; and with
    ``num_workers=0`` the augmentation RNG is not restored. This loop
    replays the epoch's sampler order, skipping (loading but not training)
    the batches trained before the checkpoint, and reseeds the main-process
    RNGs from ``randomness.seed`` at every epoch start when augmentations run
    in the main process. With ``randomness=dict(seed=..., deterministic=True)``
    a run killed anywhere and resumed with ``--resume`` ends with the same
    weights, bit for bit, as one never interrupted (on CPU).
    ``tools/train.py`` selects it for every epoch-based config.

    Limits: with ``persistent_workers=True`` worker RNG state is not
    restored; dropout/drop-path draws are replayed only per epoch.

    Args: those of ``EpochBasedTrainLoop`` (``runner``, ``dataloader``,
    ``max_epochs``, ``val_begin``, ``val_interval``,
    ``dynamic_intervals``).
    """

    def run_epoch(self) -> None:
        """Train one epoch, skipping batches already trained before."""
        self._reseed()
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._iter - self._epoch * len(self.dataloader)
        for idx, data_batch in enumerate(self.dataloader):
            if idx < done:  # trained before the resume: load, don't train
                continue
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1

    def _reseed(self) -> None:
        seed = self.runner.seed
        if seed is None or self.dataloader.num_workers > 0:
            return  # workers are reseeded per epoch by mmengine's worker_init
        seed = (seed + self._epoch * get_world_size() + get_rank()) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
