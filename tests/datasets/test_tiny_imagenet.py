"""Tests of afd_mm.datasets.tiny_imagenet on a tiny real-layout fixture."""
import os.path as osp

import pytest
from fixtures import build_from_config, remove_path, write_tiny_imagenet

from afd_mm.datasets.tiny_imagenet import TinyImageNet

CONFIG = 'tiny_imagenet_bs128.py'
# TINY_WNIDS sorted: n01443537 goldfish, n01629819 salamander, n01641577
# bullfrog.
NAMES = ('goldfish', 'European fire salamander', 'bullfrog')


@pytest.fixture
def root(tmp_path):
    write_tiny_imagenet(tmp_path, n_classes=3, n_per_class=2)
    return tmp_path


def test_train_split_reads_sorted_wnids(root):
    dataset = TinyImageNet(str(root), split='train')
    assert len(dataset) == 6
    assert dataset.metainfo['classes'] == NAMES
    assert list(dataset.get_gt_labels()) == [0, 0, 1, 1, 2, 2]
    first = dataset.get_data_info(0)['img_path']
    assert first == osp.join(root, 'train', 'n01443537', 'images',
                             'n01443537_0.JPEG')


@pytest.mark.parametrize('split', ['val', 'test'])
def test_val_and_test_read_val_annotations(root, split):
    dataset = TinyImageNet(str(root), split=split)
    # val_0/1 are bullfrog (first in wnids.txt), val_2/3 goldfish, ...
    assert list(dataset.get_gt_labels()) == [2, 2, 0, 0, 1, 1]
    assert dataset.get_data_info(2)['img_path'] == osp.join(
        root, 'val', 'images', 'val_2.JPEG')


def test_class_names_are_wnids_without_words_txt(tmp_path):
    write_tiny_imagenet(tmp_path, words=False)
    dataset = TinyImageNet(str(tmp_path))
    assert dataset.metainfo['classes'] == ('n01443537', 'n01629819',
                                           'n01641577')


@pytest.mark.parametrize('loader,split', [('train_dataloader', 'train'),
                                          ('val_dataloader', 'val')])
def test_config_pipelines_give_64px_inputs(root, loader, split):
    dataset = build_from_config(CONFIG, loader, root)
    assert isinstance(dataset, TinyImageNet) and dataset.split == split
    for i in (0, 5):  # val_0 is a greyscale JPEG
        sample = dataset[i]
        assert tuple(sample['inputs'].shape) == (3, 64, 64)
        assert sample['data_samples'].gt_label.item() == \
            dataset.get_gt_labels()[i]


@pytest.mark.parametrize('split,missing', [
    ('train', 'wnids.txt'),
    ('train', 'train/n01443537/images'),
    ('val', 'val/val_annotations.txt'),
    ('val', 'val/images'),
])
def test_missing_file_names_file_path_and_key(root, split, missing):
    path = osp.join(root, missing)
    remove_path(path)
    with pytest.raises(FileNotFoundError) as err:
        TinyImageNet(str(root), split=split)
    message = str(err.value)
    assert f"'{missing}' not found" in message
    assert repr(path) in message and '`data_root`' in message


def test_unknown_split_lists_allowed(root):
    with pytest.raises(ValueError, match=r"split='valid' is not one of "
                       r"\('train', 'val', 'test'\)"):
        TinyImageNet(str(root), split='valid')


def test_unknown_wnid_in_val_annotations(root):
    with open(osp.join(root, 'wnids.txt'), 'w') as f:
        f.write('n01443537\nn01629819\n')
    with pytest.raises(ValueError, match="names 'n01641577'.*not in "
                       'wnids.txt'):
        TinyImageNet(str(root), split='val')
