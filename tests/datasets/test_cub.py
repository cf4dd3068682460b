"""mmpretrain's CUB with configs/_base_/datasets/cub200_bs64.py.

CUB-200-2011 needs no afd_mm reader; this checks that mmpretrain's ``CUB``
reads the real layout and that the L2T-protocol config builds on it.
"""
import os
import os.path as osp
import re

import pytest
from fixtures import build_from_config, write_cub
from mmpretrain.datasets import CUB

CONFIG = 'cub200_bs64.py'


@pytest.fixture
def root(tmp_path):
    write_cub(tmp_path, n_train=2, n_test=1)
    return tmp_path


@pytest.mark.parametrize('split,labels', [('train', [0, 0, 1, 1, 2, 2]),
                                          ('test', [0, 1, 2])])
def test_splits_follow_train_test_split_txt(root, split, labels):
    dataset = CUB(str(root), split=split)
    assert list(dataset.get_gt_labels()) == labels
    assert dataset.metainfo['classes'][:3] == (
        'Black_footed_Albatross', 'Laysan_Albatross', 'Sooty_Albatross')
    assert len(dataset.metainfo['classes']) == 200


@pytest.mark.parametrize('loader,split', [('train_dataloader', 'train'),
                                          ('val_dataloader', 'test')])
def test_config_pipelines_give_224px_inputs(root, loader, split):
    dataset = build_from_config(CONFIG, loader, root)
    assert isinstance(dataset, CUB) and dataset.split == split
    sample = dataset[len(dataset) - 1]
    assert tuple(sample['inputs'].shape) == (3, 224, 224)
    assert sample['data_samples'].gt_label.item() == 2


@pytest.mark.parametrize('missing', [
    'images.txt', 'image_class_labels.txt', 'train_test_split.txt'])
def test_missing_file_raises_with_its_path(root, missing):
    path = osp.join(root, missing)
    os.remove(path)
    with pytest.raises(FileNotFoundError, match=re.escape(repr(path))):
        CUB(str(root), split='train')
