"""Teachers named by mmpretrain's model zoo: config and published weights.

``AFDDistiller(teacher='resnet34_8xb32_in1k')`` looks the name up in
mmpretrain's model-zoo metadata (the metafiles installed with mmpretrain,
read by ``mmpretrain.apis.ModelHub``; no network), builds the ``model`` of
the config the metadata names and loads the weights it lists. The weights
are downloaded once into torch hub's checkpoint folder
(``<torch.hub.get_dir()>/checkpoints``, i.e. ``~/.cache/torch/hub/
checkpoints`` unless ``TORCH_HOME`` is set); a file of the URL's name
already there is used as is, so offline machines work with a copy placed
there by hand (``afd_mm/utils/checkpoint.py`` does the fetching).
"""
import difflib
import os.path as osp
from typing import Tuple

from mmpretrain.apis import ModelHub, list_models


def is_zoo_name(teacher: str) -> bool:
    """A bare name: not a config path (``.py``, ``::``) nor a file."""
    return not (teacher.endswith('.py') or '::' in teacher
                or osp.exists(teacher) or '/' in teacher)


def zoo_teacher(name: str) -> Tuple[dict, str]:
    """The teacher's model config and weights URL from the model zoo.

    Args:
        name (str): a model name from ``mmpretrain.list_models()``.

    Returns:
        tuple[dict, str]: the ``model`` of its config, and the published
        weights' URL.

    Raises:
        KeyError: unknown name (close matches listed), or a zoo entry
            without weights or config.
    """
    try:
        meta = ModelHub.get(name)
    except ValueError:
        close = difflib.get_close_matches(name, list_models(), n=5)
        raise KeyError(
            f'`model.teacher={name!r}` is neither a config file nor a model '
            f'of mmpretrain\'s model zoo (closest names: {close}); use a name '
            'from mmpretrain.list_models(), a config path or a model '
            'config dict.') from None
    if not meta.weights or meta.config is None or 'model' not in meta.config:
        raise KeyError(
            f'mmpretrain\'s model zoo lists {name!r} without published '
            'weights or a model config; give `model.teacher` as a config and '
            '`model.teacher_ckpt` as the weights instead.')
    return meta.config.model.to_dict(), meta.weights


def skip_teacher_weights(model_cfg) -> None:
    """Set a distiller config to build its teacher without weights.

    For tools that load a checkpoint holding the teacher anyway, or need
    shapes only: ``teacher_ckpt`` becomes None and a model-zoo name is
    replaced by its model config, so nothing is downloaded.

    Args:
        model_cfg (dict | ConfigDict): the ``model`` of a distiller config,
            changed in place.
    """
    teacher = model_cfg.get('teacher')
    if isinstance(teacher, str) and is_zoo_name(teacher):
        model_cfg['teacher'] = zoo_teacher(teacher)[0]
    model_cfg['teacher_ckpt'] = None
