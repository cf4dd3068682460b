"""Fashion-MNIST read from its gzipped IDX files (Xiao et al., 2017)."""
import gzip
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
from mmpretrain.datasets import BaseDataset

from afd_mm.registry import DATASETS

from .utils import check_split

DEBIAN_ROOT = '/usr/share/datasets/fashion-mnist'
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: uint8, 3 dims / 1 dim
HOW_TO_GET = (
    'Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; '
    f'the files land in {DEBIAN_ROOT}) or `make demo` (installs it), or '
    'download the four .gz files from '
    'https://github.com/zalandoresearch/fashion-mnist and set `data_root` '
    'to their folder.')


@DATASETS.register_module()
class FashionMNIST(BaseDataset):
    """Fashion-MNIST as 3-channel images for CIFAR-style networks.

    Layout read (the files as distributed, gzipped IDX; uncompressed copies
    without ``.gz``, as torchvision's ``raw/`` folder has them, work too)::

        data_root/
        ├── train-images-idx3-ubyte.gz    60,000 images 28x28, uint8
        ├── train-labels-idx1-ubyte.gz    60,000 labels 0-9
        ├── t10k-images-idx3-ubyte.gz     10,000 test images
        └── t10k-labels-idx1-ubyte.gz     10,000 test labels

    Each sample's ``img`` is an (H, W, 3) uint8 array, the grey image
    repeated on three channels, so CIFAR networks (3 input channels) and
    mmpretrain's transforms work unchanged. The reader pads it with ``pad``
    black pixels on every side: 28x28 -> 32x32 by default, the CIFAR input
    size, so no ``Pad`` transform is needed in the pipeline (and test-time
    images are padded the same, centred). ``metainfo['classes']`` are the
    ten class names of the dataset's README, in label order.

    Args:
        data_root (str): folder of the four files. Defaults to
            ``/usr/share/datasets/fashion-mnist``, where the Debian package
            ``dataset-fashion-mnist`` puts them.
        split (str): ``'train'`` (60,000 images) or ``'test'`` (the 10,000
            ``t10k`` images). Defaults to ``'train'``.
        pad (int): black pixels added on each side, >= 0. Defaults to 2
            (28 -> 32, the CIFAR size); 0 keeps 28x28.
        num_samples (int, optional): keep a random subset of this many
            images of the split (low-data experiments), drawn with
            ``subset_seed``, in file order. Defaults to None (all).
        subset_seed (int): seed of the subset draw; the same seed gives the
            same images. Defaults to 0.
        pipeline (Sequence[dict]): transforms applied to each sample.
            Defaults to ``()``.
        test_mode (bool): mmengine's ``BaseDataset`` flag. Defaults to
            False.
        indices (int | Sequence[int], optional): mmengine's ``indices``,
            applied after ``num_samples``. Defaults to None (all).
        serialize_data (bool): store the samples as one buffer shared by
            dataloader workers (mmengine's default). Defaults to True.
        lazy_init (bool): defer reading the files until ``full_init()``.
            Defaults to False.
    """

    METAINFO = dict(classes=(
        'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
        'Shirt', 'Sneaker', 'Bag', 'Ankle boot'))
    SPLITS = ('train', 'test')
    FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
             'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}

    def __init__(self,
                 data_root: str = DEBIAN_ROOT,
                 split: str = 'train',
                 pad: int = 2,
                 num_samples: Optional[int] = None,
                 subset_seed: int = 0,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 serialize_data: bool = True,
                 lazy_init: bool = False):
        check_split('FashionMNIST', split, self.SPLITS)
        if not isinstance(pad, int) or pad < 0:
            raise ValueError(f'FashionMNIST: pad={pad!r} must be an int '
                             '>= 0; change `pad` in the dataset config.')
        if num_samples is not None and (
                not isinstance(num_samples, int) or num_samples < 1):
            raise ValueError(
                f'FashionMNIST: num_samples={num_samples!r} must be a '
                'positive int or None (all); change `num_samples`.')
        self.split, self.pad = split, pad
        self.num_samples, self.subset_seed = num_samples, subset_seed
        super().__init__(
            ann_file='', data_root=data_root, pipeline=pipeline,
            test_mode=test_mode, indices=indices,
            serialize_data=serialize_data, lazy_init=lazy_init)

    def _path(self, name: str) -> str:
        """``data_root/name.gz`` (or ``name``); FileNotFoundError if none."""
        for candidate in (name + '.gz', name):
            path = osp.join(self.data_root, candidate)
            if osp.isfile(path):
                return path
        raise FileNotFoundError(
            f'FashionMNIST: {name}.gz not found (looked at '
            f'{osp.join(self.data_root, name + ".gz")!r}). {HOW_TO_GET}')

    def load_data_list(self) -> List[dict]:
        """Read the split's images and labels (and draw the subset)."""
        image_file, label_file = self.FILES[self.split]
        images = read_idx(self._path(image_file), IMAGES_MAGIC)  # (N, H, W)
        labels = read_idx(self._path(label_file), LABELS_MAGIC)  # (N, )
        if len(images) != len(labels):
            raise ValueError(
                f'FashionMNIST: {image_file} has {len(images)} images but '
                f'{label_file} {len(labels)} labels under '
                f'{self.data_root!r}; the files come from different '
                'releases or one is truncated. Reinstall them.')
        keep = self._subset(len(images))
        p = self.pad
        images = np.pad(images[keep], ((0, 0), (p, p), (p, p)))
        images = np.repeat(images[..., None], 3, axis=-1)  # (N, H, W, 3)
        return [dict(img=img, gt_label=int(label))
                for img, label in zip(images, labels[keep])]

    def _subset(self, total: int) -> np.ndarray:
        """Sorted indices of the ``num_samples`` images to keep."""
        if self.num_samples is None:
            return np.arange(total)
        if self.num_samples > total:
            raise ValueError(
                f'FashionMNIST: num_samples={self.num_samples} but the '
                f'{self.split} split has {total} images; lower '
                '`num_samples` (or set None for all).')
        rng = np.random.RandomState(self.subset_seed)
        return np.sort(rng.permutation(total)[:self.num_samples])

    def extra_repr(self) -> List[str]:
        """Root, split, padding and subset, shown by ``repr(dataset)``."""
        subset = 'all' if self.num_samples is None else \
            f'{self.num_samples} (seed {self.subset_seed})'
        return [f'Root of dataset: \t{self.data_root}',
                f'Split: \t{self.split}', f'Pad: \t{self.pad}',
                f'Subset: \t{subset}']


def read_idx(path: str, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped if it ends in .gz).

    The format (LeCun's MNIST page): a big-endian int32 magic number
    ``0x0800 + ndim`` (2051 for images, 2049 for labels), ``ndim``
    big-endian int32 sizes, then the uint8 data in C order.

    Args:
        path (str): the file.
        magic (int): the expected magic number.

    Returns:
        np.ndarray: uint8 array of the sizes in the header, e.g. (N, H, W)
        for images, (N, ) for labels.
    """
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    found = int.from_bytes(data[:4], 'big') if len(data) >= 4 else None
    if found != magic:
        raise ValueError(
            f'{path!r} is not an IDX file of the expected kind: magic number '
            f'{found}, expected {magic}. Replace it with the file as '
            'distributed.')
    ndim = magic - 0x0800
    sizes = np.frombuffer(data, '>i4', ndim, offset=4)
    shape = tuple(int(n) for n in sizes)
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(
            f'{path!r} is truncated: its header says {shape}, '
            f'{int(np.prod(shape))} bytes of data, found {len(data) - offset}'
            '. '
            'Replace it with the file as distributed.')
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)
