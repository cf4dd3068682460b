"""Training loops that resume exactly in the middle of an epoch."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import get_rank, get_world_size
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from afd_mm.registry import LOOPS


def get_rng_state() -> dict:
    """The main process's Python, NumPy, torch (and CUDA) RNG states, as
    plain Python values and tensors (a ``weights_only`` checkpoint loads
    them)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = dict(python=random.getstate(),
                 numpy=(kind, torch.from_numpy(keys.astype(np.int64)), pos,
                        has_gauss, gauss),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`get_rng_state` returned."""
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal), gauss_next))
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state(
        (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda is not None and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class RestoresRNG:
    """A loop that, when resumed from a checkpoint saved in the middle of
    an epoch, restores the RNG states the checkpoint holds right before
    loading its first new batch (``RNGStateHook`` fills
    ``resume_rng_state``). Model-side draws (RoI sampling, dropout) then
    continue as in the run that saved it. One process only: mmengine saves
    checkpoints on rank 0, so other ranks' states are not in the file."""

    resume_rng_state: Optional[dict] = None

    def _restore_rng(self) -> None:
        state, self.resume_rng_state = self.resume_rng_state, None
        if state is not None and get_world_size() == 1:
            set_rng_state(state)


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(RestoresRNG, EpochBasedTrainLoop):
    """mmengine's ``EpochBasedTrainLoop``, resumable in the middle of an epoch.

    mmengine's loop restarts an interrupted epoch from its first batch while
    keeping the iteration count, so batches are trained twice; and with
    ``num_workers=0`` the augmentation RNG is not restored. This loop
    replays the epoch's sampler order, skipping (loading but not training)
    the batches trained before the checkpoint, and reseeds the main-process
    RNGs from ``randomness.seed`` at every epoch start when augmentations run
    in the main process. Before the first batch it trains, it restores the
    RNG states saved with the checkpoint (``RNGStateHook``). With
    ``randomness=dict(seed=..., deterministic=True)`` a single-process run
    killed anywhere and resumed with ``--resume`` ends with the same
    weights, bit for bit, as one never interrupted (on CPU; tested for
    classification and Faster R-CNN). ``tools/train.py`` selects it for
    every epoch-based config.

    Limits: with ``persistent_workers=True`` worker RNG state is not
    restored; in a distributed run only the batch order is replayed (see
    ``RestoresRNG``).

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
                if idx == done - 1:  # the next batch loads as it did then
                    self._restore_rng()
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


@LOOPS.register_module()
class ResumableIterBasedTrainLoop(RestoresRNG, IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` that also restores the RNG states
    of the checkpoint it resumes from (``RNGStateHook``), once mmengine's
    ``run`` has skipped the batches trained before it.
    ``tools/train.py`` selects it for every iteration-based config.

    Args: those of ``IterBasedTrainLoop``.
    """

    def run(self):
        """mmengine's ``run``; its iterator restores the RNG states after
        the ``self._iter`` batches it skips."""
        if self._iter > 0 and self.resume_rng_state is not None:
            self.dataloader_iterator = _AfterSkipping(
                self.dataloader_iterator, self._iter, self._restore_rng)
        return super().run()


class _AfterSkipping:
    """An iterator that calls ``action`` after its first ``skip`` items."""

    def __init__(self, iterator, skip: int, action):
        self.iterator, self.left, self.action = iterator, skip, action

    def __iter__(self):
        return self

    def __next__(self):
        item = next(self.iterator)
        self.left -= 1
        if self.left == 0:
            self.action()
        return item
