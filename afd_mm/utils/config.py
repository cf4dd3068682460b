"""Config helpers shared by afd_mm's tools (train, list_candidates)."""
from typing import Optional, Tuple

# transform type (last part of the name) -> its output-size key, (h, w)
_CROP_KEYS = {'RandomResizedCrop': 'scale', 'RandomCrop': 'crop_size',
              'CenterCrop': 'crop_size', 'Resize': 'scale'}


def train_crop_size(cfg) -> Optional[Tuple[int, int]]:
    """(H, W) of the training pipeline's last crop/resize, or None.

    Reads ``train_dataloader.dataset.pipeline`` (or that of a wrapped
    ``dataset.dataset``); int sizes are square. A resize that keeps the
    aspect ratio (``keep_ratio=True``, detection pipelines) has no fixed
    output size and is skipped.
    """
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    pipeline = dataset.get('pipeline') or \
        (dataset.get('dataset') or {}).get('pipeline') or []
    size = None
    for step in pipeline:
        kind = str(step.get('type', '')).rsplit('.', 1)[-1]
        if step.get('keep_ratio'):  # mmdet's Resize: the size varies
            continue
        value = step.get(_CROP_KEYS.get(kind, ''), None)
        if isinstance(value, int):
            size = (value, value)
        elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
                isinstance(v, int) and v > 0 for v in value):
            size = tuple(value)
    return size


def fill_probe_size(cfg) -> None:
    """A distiller config without ``model.probe_size`` probes at the
    training crop size (when the pipeline has one)."""
    model = cfg.get('model') or {}
    if model.get('type') != 'afd_mm.AFDDistiller' or 'probe_size' in model:
        return
    size = train_crop_size(cfg)
    if size is not None:
        model['probe_size'] = size
