"""MIT Indoor Scene Recognition (MIT67) read from its distributed layout."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmpretrain.datasets import BaseDataset

from afd_mm.registry import DATASETS

from .utils import check_split

_LAYOUT = 'Images/ (indoorCVPR_09.tar), TrainImages.txt and TestImages.txt'


@DATASETS.register_module()
class MIT67(BaseDataset):
    """MIT Indoor 67 with its official 80/20-per-class split.

    Layout read (``indoorCVPR_09.tar`` unpacked, next to the two split files
    distributed with it)::

        data_root/
        ├── Images/<class>/<file>.jpg     67 class folders, e.g. ``bakery``
        ├── TrainImages.txt               ``<class>/<file>.jpg``, 5,360 lines
        └── TestImages.txt                ``<class>/<file>.jpg``, 1,340 lines

    ``metainfo['classes']`` is the sorted folder names of ``Images/`` and
    labels index it, the order torchvision's ``ImageFolder`` gives (used by
    the L2T and AFD releases).

    Args:
        data_root (str): The folder holding ``Images/``, ``TrainImages.txt``
            and ``TestImages.txt``.
        split (str): ``'train'`` (``TrainImages.txt``) or ``'test'``
            (``TestImages.txt``). Defaults to ``'train'``.
        pipeline (Sequence[dict]): Transforms applied to each sample
            (mmpretrain's, e.g. from ``configs/_base_/datasets/
            mit67_bs64.py``). Defaults to ``()``.
        test_mode (bool): If True a sample that fails to load raises instead
            of being replaced by a random other one (mmengine's
            ``BaseDataset``). Defaults to False.
        indices (int | Sequence[int], optional): Keep only the first
            ``indices`` samples, or those indices (quick runs). Defaults to
            None (all).
        serialize_data (bool): Store the sample list as one buffer that
            dataloader workers share (mmengine's default). Defaults to True.
        lazy_init (bool): Defer reading the split files (and
            ``metainfo['classes']``) until ``full_init()``. Defaults to
            False.
    """

    SPLITS = ('train', 'test')
    SPLIT_FILES = {'train': 'TrainImages.txt', 'test': 'TestImages.txt'}

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 lazy_init: bool = False):
        check_split('MIT67', split, self.SPLITS)
        self.split = split
        super().__init__(
            ann_file='', data_root=data_root, pipeline=pipeline,
            test_mode=test_mode, indices=indices,
            serialize_data=serialize_data, lazy_init=lazy_init)

    def _path(self, *parts: str) -> str:
        """``data_root/parts``; FileNotFoundError if it does not exist."""
        path = osp.join(self.data_root, *parts)
        if not osp.exists(path):
            raise FileNotFoundError(
                f'MIT67: {"/".join(parts)!r} not found (looked at {path!r}). '
                'Set `data_root` in the dataset config to the folder that '
                f'holds {_LAYOUT}.')
        return path

    def load_data_list(self) -> List[dict]:
        """Read the split's (img_path, gt_label) list and the class names."""
        image_dir = self._path('Images')
        classes = sorted(name for name in os.listdir(image_dir)
                         if osp.isdir(osp.join(image_dir, name)))
        self._metainfo['classes'] = tuple(classes)
        label_of = {name: i for i, name in enumerate(classes)}
        split_file = self.SPLIT_FILES[self.split]
        with open(self._path(split_file)) as f:
            rel_paths = [line.strip() for line in f if line.strip()]
        data_list = []
        for rel_path in rel_paths:
            class_name = rel_path.split('/')[0]
            if class_name not in label_of:
                raise ValueError(
                    f'MIT67: {split_file} lists {rel_path!r}, but there is '
                    f'no folder Images/{class_name} under {self.data_root!r}'
                    '; check that `data_root` points to one complete '
                    'indoorCVPR_09 unpacking.')
            data_list.append(dict(img_path=osp.join(image_dir, rel_path),
                                  gt_label=label_of[class_name]))
        return data_list

    def extra_repr(self) -> List[str]:
        """Root and split, shown by ``repr(dataset)``."""
        return [f'Root of dataset: \t{self.data_root}',
                f'Split: \t{self.split}']
