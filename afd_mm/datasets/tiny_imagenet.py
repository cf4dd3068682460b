"""Tiny ImageNet (200 classes, 64x64) read from its distributed layout."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmpretrain.datasets import BaseDataset

from afd_mm.registry import DATASETS

from .utils import check_split

_LAYOUT = 'wnids.txt, words.txt, train/ and val/ (tiny-imagenet-200)'
_IMG_SUFFIXES = ('.jpeg', '.jpg')


@DATASETS.register_module()
class TinyImageNet(BaseDataset):
    """Tiny ImageNet, as unpacked from ``tiny-imagenet-200.zip``.

    Layout read (the official archive, unchanged)::

        data_root/
        ├── wnids.txt                 200 WordNet ids, one a line
        ├── words.txt                 ``<wnid>\\t<name>, <name>, ...``
        ├── train/<wnid>/images/<wnid>_<i>.JPEG     500 per class
        └── val/
            ├── images/val_<i>.JPEG                 10,000 images
            └── val_annotations.txt   ``<file>\\t<wnid>\\t<x0>\\t<y0>...``

    The official ``test/`` folder has no labels, so ``split='test'`` (as
    ``'val'``) reads the labelled ``val/`` folder, which the paper reports.
    Labels index the *sorted* wnids, the order torchvision's ``ImageFolder``
    gives and that PyTorch Tiny ImageNet checkpoints use (not the line order
    of ``wnids.txt``). ``metainfo['classes']`` holds the first name of each
    synset in ``words.txt`` (e.g. ``'goldfish'``), or the wnid itself when
    ``words.txt`` is absent or lacks that wnid.

    Args:
        data_root (str): The ``tiny-imagenet-200`` folder, holding
            ``wnids.txt``, ``train/`` and ``val/``.
        split (str): ``'train'``, or ``'val'`` / ``'test'`` (both read
            ``val/``). Defaults to ``'train'``.
        pipeline (Sequence[dict]): Transforms applied to each sample
            (mmpretrain's, e.g. from ``configs/_base_/datasets/
            tiny_imagenet_bs128.py``). Defaults to ``()``.
        test_mode (bool): If True a sample that fails to load raises instead
            of being replaced by a random other one (mmengine's
            ``BaseDataset``). Defaults to False.
        indices (int | Sequence[int], optional): Keep only the first
            ``indices`` samples, or those indices (quick runs). Defaults to
            None (all).
        serialize_data (bool): Store the sample list as one buffer that
            dataloader workers share (mmengine's default). Defaults to True.
        lazy_init (bool): Defer reading the annotation files (and
            ``metainfo['classes']``) until ``full_init()``. Defaults to
            False.
    """

    SPLITS = ('train', 'val', 'test')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 lazy_init: bool = False):
        check_split('TinyImageNet', split, self.SPLITS)
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
                f'TinyImageNet: {"/".join(parts)!r} not found (looked at '
                f'{path!r}). Set `data_root` in the dataset config to the '
                f'folder that holds {_LAYOUT}.')
        return path

    def _read_lines(self, *parts: str) -> List[str]:
        """Non-empty stripped lines of ``data_root/parts``."""
        with open(self._path(*parts)) as f:
            return [line.strip() for line in f if line.strip()]

    def _class_names(self, wnids: List[str]) -> tuple:
        """First synset name per wnid from ``words.txt``, else the wnid."""
        if not osp.exists(osp.join(self.data_root, 'words.txt')):
            return tuple(wnids)
        words = dict(line.split('\t', 1)
                     for line in self._read_lines('words.txt'))
        return tuple(words.get(w, w).split(',')[0].strip() for w in wnids)

    def load_data_list(self) -> List[dict]:
        """Read the split's (img_path, gt_label) list and the class names."""
        wnids = sorted(self._read_lines('wnids.txt'))
        self._metainfo['classes'] = self._class_names(wnids)
        label_of = {wnid: i for i, wnid in enumerate(wnids)}
        if self.split == 'train':
            return [dict(img_path=path, gt_label=label_of[wnid])
                    for wnid in wnids for path in self._train_images(wnid)]
        return self._val_data_list(label_of)

    def _train_images(self, wnid: str) -> List[str]:
        """Sorted image paths of ``train/<wnid>/images/``."""
        folder = self._path('train', wnid, 'images')
        return [osp.join(folder, name) for name in sorted(os.listdir(folder))
                if name.lower().endswith(_IMG_SUFFIXES)]

    def _val_data_list(self, label_of: dict) -> List[dict]:
        """Samples listed in ``val/val_annotations.txt``."""
        image_dir = self._path('val', 'images')
        data_list = []
        for line in self._read_lines('val', 'val_annotations.txt'):
            name, wnid = line.split('\t')[:2]
            if wnid not in label_of:
                raise ValueError(
                    f'TinyImageNet: val/val_annotations.txt names {wnid!r} '
                    f'(for {name!r}), which is not in wnids.txt under '
                    f'{self.data_root!r}; check that `data_root` points to '
                    'one unmodified tiny-imagenet-200 folder.')
            data_list.append(dict(img_path=osp.join(image_dir, name),
                                  gt_label=label_of[wnid]))
        return data_list

    def extra_repr(self) -> List[str]:
        """Root and split, shown by ``repr(dataset)``."""
        return [f'Root of dataset: \t{self.data_root}',
                f'Split: \t{self.split}']
