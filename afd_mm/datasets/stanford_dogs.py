"""Stanford Dogs read from its distributed layout."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
from mmpretrain.datasets import BaseDataset
from scipy.io import loadmat

from afd_mm.registry import DATASETS

from .utils import check_split

_LAYOUT = ('Images/ (images.tar) and train_list.mat / test_list.mat '
           '(lists.tar)')


@DATASETS.register_module()
class StanfordDogs(BaseDataset):
    """Stanford Dogs (120 breeds) with its official split.

    Layout read (``images.tar`` and ``lists.tar`` unpacked)::

        data_root/
        ├── Images/<synset>-<breed>/<synset>_<n>.jpg
        │       e.g. Images/n02085620-Chihuahua/n02085620_10074.jpg
        ├── train_list.mat     MATLAB v5: ``file_list`` (cell of
        └── test_list.mat      ``'<synset>-<breed>/<file>.jpg'``),
                               ``labels`` (1-based), ``annotation_list``

    The ``.mat`` files are read with ``scipy.io.loadmat``. Labels are the
    files' ``labels`` minus one, which index the sorted folder names of
    ``Images/`` (the order torchvision's ``ImageFolder`` gives, used by the
    L2T and AFD releases); a label that disagrees with its file's folder
    raises ValueError. ``metainfo['classes']`` holds the readable breed part
    of each folder name (``'n02085782-Japanese_spaniel'`` ->
    ``'Japanese spaniel'``).

    Args:
        data_root (str): The folder holding ``Images/``, ``train_list.mat``
            and ``test_list.mat``.
        split (str): ``'train'`` (12,000 images, ``train_list.mat``) or
            ``'test'`` (8,580, ``test_list.mat``). Defaults to ``'train'``.
        pipeline (Sequence[dict]): Transforms applied to each sample
            (mmpretrain's, e.g. from ``configs/_base_/datasets/
            stanford_dogs_bs64.py``). Defaults to ``()``.
        test_mode (bool): If True a sample that fails to load raises instead
            of being replaced by a random other one (mmengine's
            ``BaseDataset``). Defaults to False.
        indices (int | Sequence[int], optional): Keep only the first
            ``indices`` samples, or those indices (quick runs). Defaults to
            None (all).
        serialize_data (bool): Store the sample list as one buffer that
            dataloader workers share (mmengine's default). Defaults to True.
        lazy_init (bool): Defer reading the split file (and
            ``metainfo['classes']``) until ``full_init()``. Defaults to
            False.
    """

    SPLITS = ('train', 'test')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 lazy_init: bool = False):
        check_split('StanfordDogs', split, self.SPLITS)
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
                f'StanfordDogs: {"/".join(parts)!r} not found (looked at '
                f'{path!r}). Set `data_root` in the dataset config to the '
                f'folder that holds {_LAYOUT}.')
        return path

    def _read_split(self) -> tuple:
        """(relative file paths, 0-based labels) of ``<split>_list.mat``."""
        name = f'{self.split}_list.mat'
        mat = loadmat(self._path(name))
        if 'file_list' not in mat or 'labels' not in mat:
            raise KeyError(
                f'StanfordDogs: {name} under {self.data_root!r} has no '
                '`file_list` / `labels` variables; use the file from the '
                'official lists.tar.')
        files = [str(np.squeeze(f)) for f in mat['file_list'].ravel()]
        labels = mat['labels'].ravel().astype(int) - 1
        return files, labels

    def load_data_list(self) -> List[dict]:
        """Read the split's (img_path, gt_label) list and the class names."""
        image_dir = self._path('Images')
        folders = sorted(name for name in os.listdir(image_dir)
                         if osp.isdir(osp.join(image_dir, name)))
        self._metainfo['classes'] = tuple(
            name.split('-', 1)[-1].replace('_', ' ') for name in folders)
        data_list = []
        for rel_path, label in zip(*self._read_split()):
            folder = rel_path.split('/')[0]
            if not 0 <= label < len(folders) or folders[label] != folder:
                raise ValueError(
                    f'StanfordDogs: {self.split}_list.mat gives label '
                    f'{label + 1} to {rel_path!r}, which is not the place '
                    f'of Images/{folder} among the sorted folders of '
                    f'{image_dir!r}; check that `data_root` holds the 120 '
                    'Images/ folders of images.tar and no others.')
            data_list.append(dict(img_path=osp.join(image_dir, rel_path),
                                  gt_label=int(label)))
        return data_list

    def extra_repr(self) -> List[str]:
        """Root and split, shown by ``repr(dataset)``."""
        return [f'Root of dataset: \t{self.data_root}',
                f'Split: \t{self.split}']
