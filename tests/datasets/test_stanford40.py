"""Tests of afd_mm.datasets.stanford40 on a tiny real-layout fixture."""
import os.path as osp

import pytest
from fixtures import build_from_config, remove_path, write_stanford40

from afd_mm.datasets.stanford40 import Stanford40

CONFIG = 'stanford40_bs64.py'
ACTIONS = ('applauding', 'blowing_bubbles', 'riding_a_horse')  # sorted


@pytest.fixture
def root(tmp_path):
    write_stanford40(tmp_path, n_train=2, n_test=1)
    return tmp_path


def test_train_split_reads_action_train_files(root):
    dataset = Stanford40(str(root), split='train')
    assert len(dataset) == 6
    assert dataset.metainfo['classes'] == ACTIONS
    assert list(dataset.get_gt_labels()) == [0, 0, 1, 1, 2, 2]
    assert dataset.get_data_info(5)['img_path'] == osp.join(
        root, 'JPEGImages', 'riding_a_horse_002.jpg')


def test_test_split_reads_action_test_files(root):
    dataset = Stanford40(str(root), split='test')
    assert list(dataset.get_gt_labels()) == [0, 1, 2]
    assert dataset.get_data_info(0)['img_path'] == osp.join(
        root, 'JPEGImages', 'applauding_003.jpg')


@pytest.mark.parametrize('loader,split', [('train_dataloader', 'train'),
                                          ('val_dataloader', 'test')])
def test_config_pipelines_give_224px_inputs(root, loader, split):
    dataset = build_from_config(CONFIG, loader, root)
    assert isinstance(dataset, Stanford40) and dataset.split == split
    sample = dataset[len(dataset) - 1]
    assert tuple(sample['inputs'].shape) == (3, 224, 224)
    assert sample['data_samples'].gt_label.item() == 2


@pytest.mark.parametrize('split,missing', [
    ('train', 'ImageSplits/actions.txt'),
    ('train', 'JPEGImages'),
    ('train', 'ImageSplits/blowing_bubbles_train.txt'),
    ('test', 'ImageSplits/applauding_test.txt'),
])
def test_missing_file_names_file_path_and_key(root, split, missing):
    path = osp.join(root, missing)
    remove_path(path)
    with pytest.raises(FileNotFoundError) as err:
        Stanford40(str(root), split=split)
    message = str(err.value)
    assert f"'{missing}' not found" in message
    assert repr(path) in message and '`data_root`' in message


def test_unknown_split_lists_allowed(root):
    with pytest.raises(ValueError,
                       match=r"split='val' is not one of \('train', 'test'\)"):
        Stanford40(str(root), split='val')
