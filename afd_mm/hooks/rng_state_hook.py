"""Random-number state in checkpoints, for an exact resume."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from afd_mm.engine.loops import RestoresRNG, get_rng_state


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save the main process's RNG states with every checkpoint; hand them
    to the resumable loop when a run resumes.

    Without them a resumed run replays the batch order but not the random
    draws of the model between the epoch's start and the checkpoint (a
    detector's RoI and anchor sampling, dropout), and diverges from the
    run that was interrupted. ``before_save_checkpoint`` stores
    ``checkpoint['meta']['rng_state']`` (Python, NumPy, torch and CUDA
    states as tensors and plain values: a ``weights_only`` load reads
    them); ``after_load_checkpoint`` gives them to
    ``ResumableEpochBasedTrainLoop`` / ``ResumableIterBasedTrainLoop``,
    which restore them before the first batch they train. A checkpoint
    loaded with ``load_from`` (no resume) trains from iteration 0 and
    ignores them. ``afd_mm.AFDRunner`` (what ``tools/train.py`` builds)
    registers it. No arguments.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['rng_state'] = get_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # the built loop only: `runner.train_loop` would build one (and its
        # dataloader) in a run that only tests
        loop = runner._train_loop
        if isinstance(loop, RestoresRNG):
            loop.resume_rng_state = checkpoint.get('meta', {}).get(
                'rng_state')
