"""TrainSetSizeHook: hands the training set's length to CRD's banks."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from afd_mm.models.losses.crd_loss import CRDLoss
from afd_mm.registry import HOOKS


@HOOKS.register_module()
class TrainSetSizeHook(Hook):
    """Size a CRD loss's memory banks by the training set, before training.

    ``CRDLoss`` keeps one memory-bank row per training image, so it needs
    the training set's length N. Before the run (after the train
    dataloader is built, before ``load_from``/``--resume`` are loaded) this
    hook calls ``distill_loss.set_num_data(len(train_dataset))``: a loss
    configured without ``num_data`` takes it, one configured with another
    value is refused with a message naming both. Other losses are left
    alone. afd_mm's ``tools/train.py`` adds it to every distiller config;
    with other tools add it yourself::

        custom_hooks = [dict(type='afd_mm.TrainSetSizeHook')]

    Args: none.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        """Size the banks; nothing to do without a CRD loss."""
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        loss = getattr(model, 'distill_loss', None)
        if isinstance(loss, CRDLoss) and runner.train_dataloader is not None:
            loss.set_num_data(len(runner.train_dataloader.dataset))
