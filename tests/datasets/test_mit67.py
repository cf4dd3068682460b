"""Tests of afd_mm.datasets.mit67 on a tiny real-layout fixture."""
import os.path as osp
import shutil

import pytest
from fixtures import build_from_config, remove_path, write_mit67

from afd_mm.datasets.mit67 import MIT67

CONFIG = 'mit67_bs64.py'
CLASSES = ('airport_inside', 'bakery', 'kitchen')  # sorted folder names


@pytest.fixture
def root(tmp_path):
    write_mit67(tmp_path, n_train=2, n_test=1)  # kitchen, airport, bakery
    return tmp_path


def test_train_split_follows_train_images_txt(root):
    dataset = MIT67(str(root), split='train')
    assert len(dataset) == 6
    assert dataset.metainfo['classes'] == CLASSES
    assert list(dataset.get_gt_labels()) == [2, 2, 0, 0, 1, 1]
    assert dataset.get_data_info(0)['img_path'] == osp.join(
        root, 'Images', 'kitchen', 'int0000.jpg')


def test_test_split_follows_test_images_txt(root):
    dataset = MIT67(str(root), split='test')
    assert list(dataset.get_gt_labels()) == [2, 0, 1]
    # image 2 of each class is in neither file; 3 is the test one
    assert dataset.get_data_info(1)['img_path'] == osp.join(
        root, 'Images', 'airport_inside', 'int1003.jpg')


@pytest.mark.parametrize('loader,split', [('train_dataloader', 'train'),
                                          ('val_dataloader', 'test')])
def test_config_pipelines_give_224px_inputs(root, loader, split):
    dataset = build_from_config(CONFIG, loader, root)
    assert isinstance(dataset, MIT67) and dataset.split == split
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 224, 224)
    assert sample['data_samples'].gt_label.item() == 2


@pytest.mark.parametrize('split,missing', [
    ('train', 'Images'),
    ('train', 'TrainImages.txt'),
    ('test', 'TestImages.txt'),
])
def test_missing_file_names_file_path_and_key(root, split, missing):
    path = osp.join(root, missing)
    remove_path(path)
    with pytest.raises(FileNotFoundError) as err:
        MIT67(str(root), split=split)
    message = str(err.value)
    assert f"'{missing}' not found" in message
    assert repr(path) in message and '`data_root`' in message


def test_unknown_split_lists_allowed(root):
    with pytest.raises(ValueError,
                       match=r"split='val' is not one of \('train', 'test'\)"):
        MIT67(str(root), split='val')


def test_split_file_naming_a_missing_class_folder(root):
    shutil.rmtree(osp.join(root, 'Images', 'bakery'))
    with pytest.raises(ValueError, match="lists 'bakery/int2000.jpg', but "
                       'there is no folder Images/bakery'):
        MIT67(str(root), split='train')
