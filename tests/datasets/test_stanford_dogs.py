"""Tests of afd_mm.datasets.stanford_dogs on a tiny real-layout fixture."""
import os.path as osp

import pytest
from fixtures import (
    DOG_FOLDERS,
    build_from_config,
    remove_path,
    write_stanford_dogs,
)
from scipy.io import loadmat, savemat, whosmat

from afd_mm.datasets.stanford_dogs import StanfordDogs

CONFIG = 'stanford_dogs_bs64.py'
# Breeds of the sorted folders n02085620-..., n02085782-..., n02089078-...
BREEDS = ('Chihuahua', 'Japanese spaniel', 'black-and-tan coonhound')


@pytest.fixture
def root(tmp_path):
    write_stanford_dogs(tmp_path, n_train=2, n_test=1)
    return tmp_path


def test_fixture_mat_has_real_matlab_types(root):
    kinds = dict((name, kind) for name, _, kind in
                 whosmat(osp.join(root, 'train_list.mat')))
    assert kinds == {'file_list': 'cell', 'annotation_list': 'cell',
                     'labels': 'double'}


def test_train_split_reads_train_list_mat(root):
    dataset = StanfordDogs(str(root), split='train')
    assert len(dataset) == 6
    assert dataset.metainfo['classes'] == BREEDS
    # fixture folders are written coonhound, Chihuahua, spaniel
    assert list(dataset.get_gt_labels()) == [2, 2, 0, 0, 1, 1]
    assert dataset.get_data_info(2)['img_path'] == osp.join(
        root, 'Images', 'n02085620-Chihuahua', 'n02085620_1000.jpg')


def test_test_split_reads_test_list_mat(root):
    dataset = StanfordDogs(str(root), split='test')
    assert list(dataset.get_gt_labels()) == [2, 0, 1]


@pytest.mark.parametrize('loader,split', [('train_dataloader', 'train'),
                                          ('val_dataloader', 'test')])
def test_config_pipelines_give_224px_inputs(root, loader, split):
    dataset = build_from_config(CONFIG, loader, root)
    assert isinstance(dataset, StanfordDogs) and dataset.split == split
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 224, 224)
    assert sample['data_samples'].gt_label.item() == 2


@pytest.mark.parametrize('split,missing', [
    ('train', 'Images'),
    ('train', 'train_list.mat'),
    ('test', 'test_list.mat'),
])
def test_missing_file_names_file_path_and_key(root, split, missing):
    path = osp.join(root, missing)
    remove_path(path)
    with pytest.raises(FileNotFoundError) as err:
        StanfordDogs(str(root), split=split)
    message = str(err.value)
    assert f"'{missing}' not found" in message
    assert repr(path) in message and '`data_root`' in message


def test_unknown_split_lists_allowed(root):
    with pytest.raises(ValueError,
                       match=r"split='val' is not one of \('train', 'test'\)"):
        StanfordDogs(str(root), split='val')


def test_label_disagreeing_with_folder(root):
    path = osp.join(root, 'train_list.mat')
    mat = loadmat(path)
    mat['labels'][0, 0] = 1  # a coonhound file labelled Chihuahua
    savemat(path, {k: v for k, v in mat.items() if not k.startswith('__')})
    with pytest.raises(ValueError, match='gives label 1 to '
                       f"'{DOG_FOLDERS[0]}/n02089078_1000.jpg'"):
        StanfordDogs(str(root), split='train')


def test_mat_without_file_list(root):
    savemat(osp.join(root, 'test_list.mat'), dict(labels=[[1.0]]))
    with pytest.raises(KeyError, match='has no `file_list` / `labels`'):
        StanfordDogs(str(root), split='test')
