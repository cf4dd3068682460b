"""FashionMNIST reads the gzipped IDX files as distributed."""
import gzip
import os
import os.path as osp
import re

import numpy as np
import pytest
from mmpretrain.registry import DATASETS

from afd_mm.datasets.fashion_mnist import FashionMNIST, read_idx

FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
         'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}


def write_idx(path, array, magic):
    """An IDX file: big-endian magic and sizes, then the uint8 data."""
    header = magic.to_bytes(4, 'big') + b''.join(
        int(n).to_bytes(4, 'big') for n in array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


def write_fashion_mnist(root, num_train=20, num_test=10, seed=0):
    """A tiny Fashion-MNIST (28x28, labels i % 10) in its real layout.

    Image i of a split has the value ``(i * 7) % 256`` at pixel (0, 0), so
    tests can tell images apart; the rest is random. Returns ``root``.
    """
    rng = np.random.RandomState(seed)
    os.makedirs(root, exist_ok=True)
    for split, num in (('train', num_train), ('test', num_test)):
        images = rng.randint(0, 256, (num, 28, 28)).astype(np.uint8)
        images[:, 0, 0] = (np.arange(num) * 7) % 256
        labels = (np.arange(num) % 10).astype(np.uint8)
        image_file, label_file = FILES[split]
        write_idx(osp.join(root, image_file + '.gz'), images, 2051)
        write_idx(osp.join(root, label_file + '.gz'), labels, 2049)
    return root


@pytest.fixture
def root(tmp_path):
    return write_fashion_mnist(str(tmp_path / 'fmnist'))


def test_reads_split_as_padded_rgb(root):
    data = FashionMNIST(data_root=root, split='test')
    assert len(data) == 10
    info = data.get_data_info(3)
    assert info['img'].shape == (32, 32, 3)
    assert info['img'].dtype == np.uint8
    assert info['gt_label'] == 3
    assert info['img'][2, 2, 0] == 21  # pixel (0, 0) after 2 pixels of pad
    assert (info['img'][:2] == 0).all() and (info['img'][:, -2:] == 0).all()
    assert (info['img'][..., 0] == info['img'][..., 2]).all()
    assert data.metainfo['classes'][0] == 'T-shirt/top'
    assert len(data.metainfo['classes']) == 10


def test_matches_the_raw_file(root):
    raw = read_idx(osp.join(root, 't10k-images-idx3-ubyte.gz'), 2051)
    data = FashionMNIST(data_root=root, split='test', pad=0)
    assert raw.shape == (10, 28, 28)
    assert (data.get_data_info(5)['img'][..., 1] == raw[5]).all()


def test_subset_is_seeded_and_sorted(root):
    a = FashionMNIST(data_root=root, num_samples=6, subset_seed=1)
    b = FashionMNIST(data_root=root, num_samples=6, subset_seed=1)
    c = FashionMNIST(data_root=root, num_samples=6, subset_seed=2)
    ids = [[d.get_data_info(i)['img'][2, 2, 0] // 7 for i in range(6)]
           for d in (a, b, c)]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0] == sorted(ids[0])
    assert len(FashionMNIST(data_root=root)) == 20


def test_builds_from_config_and_runs_pipeline(root):
    data = DATASETS.build(dict(
        type='afd_mm.FashionMNIST', data_root=root, split='train',
        pipeline=[dict(type='RandomCrop', crop_size=32, padding=4),
                  dict(type='PackInputs')]))
    sample = data[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    assert int(sample['data_samples'].gt_label) == 0


def test_uncompressed_files_work(root):
    path = osp.join(root, 't10k-labels-idx1-ubyte')
    with gzip.open(path + '.gz') as f, open(path, 'wb') as out:
        out.write(f.read())
    os.remove(path + '.gz')
    assert len(FashionMNIST(data_root=root, split='test')) == 10


def test_missing_file_names_it_and_how_to_get_it(root):
    os.remove(osp.join(root, 't10k-labels-idx1-ubyte.gz'))
    with pytest.raises(FileNotFoundError) as err:
        FashionMNIST(data_root=root, split='test')
    msg = str(err.value)
    assert 't10k-labels-idx1-ubyte.gz not found' in msg
    assert osp.join(root, 't10k-labels-idx1-ubyte.gz') in msg
    assert 'apt-get install dataset-fashion-mnist' in msg
    assert 'make demo' in msg


def test_wrong_magic_is_refused(root):
    path = osp.join(root, 't10k-labels-idx1-ubyte.gz')
    write_idx(path, np.zeros((10, 2), np.uint8), 2050)
    with pytest.raises(ValueError, match='magic number 2050, expected 2049'):
        FashionMNIST(data_root=root, split='test')


def test_truncated_file_is_refused(root):
    path = osp.join(root, 't10k-images-idx3-ubyte.gz')
    with gzip.open(path) as f:
        data = f.read()
    with gzip.open(path, 'wb') as f:
        f.write(data[:-5])
    with pytest.raises(ValueError, match=re.escape(
            'is truncated: its header says (10, 28, 28)')):
        FashionMNIST(data_root=root, split='test')


def test_count_mismatch_is_refused(root):
    write_idx(osp.join(root, 't10k-labels-idx1-ubyte.gz'),
              np.zeros(9, np.uint8), 2049)
    with pytest.raises(ValueError, match='has 10 images but '
                       't10k-labels-idx1-ubyte 9 labels'):
        FashionMNIST(data_root=root, split='test')


@pytest.mark.parametrize('kwargs,match', [
    (dict(split='val'), r"split='val' is not one of \('train', 'test'\)"),
    (dict(pad=-1), 'pad=-1 must be an int >= 0'),
    (dict(num_samples=0), 'num_samples=0 must be a positive int'),
    (dict(num_samples=21), 'num_samples=21 but the train split has 20'),
])
def test_bad_arguments(root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FashionMNIST(data_root=root, **kwargs)
