"""Stanford 40 Actions read from its distributed layout."""
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmpretrain.datasets import BaseDataset

from afd_mm.registry import DATASETS

from .utils import check_split

_LAYOUT = 'JPEGImages/ and ImageSplits/ (StanfordActionDataset)'


@DATASETS.register_module()
class Stanford40(BaseDataset):
    """Stanford 40 Actions with its official split (100 train per class).

    Layout read (``JPEGImages.zip`` and ``ImageSplits.zip`` unpacked)::

        data_root/
        ├── JPEGImages/<action>_<nnn>.jpg          9,532 images
        └── ImageSplits/
            ├── actions.txt      header line, then ``<action>  <count>``
            ├── <action>_train.txt                  one file name a line
            └── <action>_test.txt

    ``metainfo['classes']`` is the sorted action names of ``actions.txt``
    (e.g. ``'riding_a_horse'``) and labels index it, the order
    torchvision's ``ImageFolder`` gives (used by the L2T and AFD releases).

    Args:
        data_root (str): The folder holding ``JPEGImages/`` and
            ``ImageSplits/``.
        split (str): ``'train'`` (4,000 images from ``<action>_train.txt``)
            or ``'test'`` (5,532 from ``<action>_test.txt``). Defaults to
            ``'train'``.
        pipeline (Sequence[dict]): Transforms applied to each sample
            (mmpretrain's, e.g. from ``configs/_base_/datasets/
            stanford40_bs64.py``). Defaults to ``()``.
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

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 lazy_init: bool = False):
        check_split('Stanford40', split, self.SPLITS)
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
                f'Stanford40: {"/".join(parts)!r} not found (looked at '
                f'{path!r}). Set `data_root` in the dataset config to the '
                f'folder that holds {_LAYOUT}.')
        return path

    def _read_lines(self, *parts: str) -> List[str]:
        """Non-empty stripped lines of ``data_root/parts``."""
        with open(self._path(*parts)) as f:
            return [line.strip() for line in f if line.strip()]

    def load_data_list(self) -> List[dict]:
        """Read the split's (img_path, gt_label) list and the class names."""
        rows = self._read_lines('ImageSplits', 'actions.txt')[1:]  # header
        actions = sorted(row.split()[0] for row in rows)
        self._metainfo['classes'] = tuple(actions)
        image_dir = self._path('JPEGImages')
        return [
            dict(img_path=osp.join(image_dir, name), gt_label=label)
            for label, action in enumerate(actions)
            for name in self._read_lines(
                'ImageSplits', f'{action}_{self.split}.txt')
        ]

    def extra_repr(self) -> List[str]:
        """Root and split, shown by ``repr(dataset)``."""
        return [f'Root of dataset: \t{self.data_root}',
                f'Split: \t{self.split}']
