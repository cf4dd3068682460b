"""Writers of tiny datasets in their real on-disk layouts, and config helpers.

Each ``write_*`` function lays out a few small random JPEGs per class with
the annotation files exactly as the dataset's authors distribute them, so
the readers are tested against the real formats (``.mat`` files included).
Class lists put the folder names in a non-sorted order on purpose: readers
must sort them. Import with ``from fixtures import ...`` (pytest puts this
folder on ``sys.path``).
"""
import os
import os.path as osp
import shutil

import numpy as np
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS
from PIL import Image
from scipy.io import savemat

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASET_CONFIGS = osp.join(REPO, 'configs', '_base_', 'datasets')

# Real ids and words.txt entries of three Tiny ImageNet classes, listed in
# non-sorted order like the real wnids.txt.
TINY_WNIDS = ('n01641577', 'n01443537', 'n01629819')
TINY_WORDS = {
    'n01443537': 'goldfish, Carassius auratus',
    'n01629819': 'European fire salamander, Salamandra salamandra',
    'n01641577': 'bullfrog, Rana catesbeiana',
}
MIT67_CLASSES = ('kitchen', 'airport_inside', 'bakery')
STANFORD40_ACTIONS = ('riding_a_horse', 'applauding', 'blowing_bubbles')
DOG_FOLDERS = ('n02089078-black-and-tan_coonhound', 'n02085620-Chihuahua',
               'n02085782-Japanese_spaniel')
CUB_FOLDERS = ('001.Black_footed_Albatross', '002.Laysan_Albatross',
               '003.Sooty_Albatross')


def write_jpeg(path, size=(40, 30), mode='RGB', seed=0):
    """Write a random JPEG of ``size`` (W, H) and ``mode`` at ``path``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    channels = 3 if mode == 'RGB' else 1
    pixels = np.random.default_rng(seed).integers(
        0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels,
                    mode).save(path, 'JPEG')


def write_lines(path, lines, newline='\n'):
    """Write ``lines`` to ``path``, each ended by ``newline``."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(''.join(line + newline for line in lines))


def remove_path(path):
    """Delete the file or folder ``path`` (to test missing-file errors)."""
    if osp.isdir(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def write_tiny_imagenet(root, n_classes=3, n_per_class=2, size=64,
                        words=True):
    """``tiny-imagenet-200`` layout; returns the wnids in wnids.txt order.

    ``n_per_class`` train and val images per class; the first val image is
    greyscale, as some real ones are. The first ``n_classes`` of
    ``TINY_WNIDS`` are used, then made-up ids.
    """
    wnids = list(TINY_WNIDS[:n_classes]) + [
        f'n0{9000000 + i}' for i in range(n_classes - len(TINY_WNIDS))]
    write_lines(osp.join(root, 'wnids.txt'), wnids)
    if words:  # the real words.txt lists all 82,115 synsets
        entries = {'n00001740': 'entity', **TINY_WORDS}
        write_lines(osp.join(root, 'words.txt'),
                    [f'{k}\t{v}' for k, v in sorted(entries.items())])
    annotations = []
    for c, wnid in enumerate(wnids):
        names = [f'{wnid}_{i}.JPEG' for i in range(n_per_class)]
        for i, name in enumerate(names):
            write_jpeg(osp.join(root, 'train', wnid, 'images', name),
                       (size, size), seed=c * 100 + i)
        write_lines(osp.join(root, 'train', wnid, f'{wnid}_boxes.txt'),
                    [f'{name}\t0\t10\t63\t54' for name in names])
        annotations += [(f'val_{c * n_per_class + i}.JPEG', wnid)
                        for i in range(n_per_class)]
    for k, (name, _) in enumerate(annotations):
        write_jpeg(osp.join(root, 'val', 'images', name), (size, size),
                   'L' if k == 0 else 'RGB', seed=1000 + k)
    write_lines(osp.join(root, 'val', 'val_annotations.txt'),
                [f'{name}\t{wnid}\t0\t32\t44\t62'
                 for name, wnid in annotations])
    write_jpeg(osp.join(root, 'test', 'images', 'test_0.JPEG'), (size, size))
    return wnids


def write_mit67(root, classes=MIT67_CLASSES, n_train=2, n_test=1,
                size=(40, 30)):
    """``indoorCVPR_09`` layout: Images/<class>/ + Train/TestImages.txt.

    Each class also holds one image listed in neither split file; the
    split files get CRLF line ends, which the reader must strip.
    """
    split_lines = {'TrainImages.txt': [], 'TestImages.txt': []}
    for c, name in enumerate(classes):
        n_files = n_train + 1 + n_test
        files = [f'{name}/int{c}{i:03d}.jpg' for i in range(n_files)]
        for i, rel in enumerate(files):
            write_jpeg(osp.join(root, 'Images', rel), size, seed=c * 100 + i)
        split_lines['TrainImages.txt'] += files[:n_train]
        split_lines['TestImages.txt'] += files[n_train + 1:]
    for name, lines in split_lines.items():
        write_lines(osp.join(root, name), lines, newline='\r\n')


def write_stanford40(root, actions=STANFORD40_ACTIONS, n_train=2, n_test=1,
                     size=(40, 30)):
    """``StanfordActionDataset`` layout: JPEGImages/ + ImageSplits/."""
    splits = osp.join(root, 'ImageSplits')
    write_lines(osp.join(splits, 'actions.txt'),
                ['action_name\tnumber_of_images']
                + [f'{action}\t{n_train + n_test}' for action in actions])
    all_files = {'train': [], 'test': []}
    for c, action in enumerate(actions):
        files = [f'{action}_{i + 1:03d}.jpg' for i in range(n_train + n_test)]
        for i, name in enumerate(files):
            write_jpeg(osp.join(root, 'JPEGImages', name), size,
                       seed=c * 100 + i)
        for split, names in (('train', files[:n_train]),
                             ('test', files[n_train:])):
            write_lines(osp.join(splits, f'{action}_{split}.txt'), names)
            all_files[split] += names
    for split, names in all_files.items():
        write_lines(osp.join(splits, f'{split}.txt'), names)


def _dogs_mat(path, rel_paths, labels):
    """A ``lists.tar`` .mat: cells ``file_list`` / ``annotation_list``."""
    cells = np.empty((len(rel_paths), 1), dtype=object)
    cells[:, 0] = rel_paths
    annotations = np.empty_like(cells)
    annotations[:, 0] = [osp.splitext(p)[0] for p in rel_paths]
    savemat(path, dict(file_list=cells, annotation_list=annotations,
                       labels=np.asarray(labels, float).reshape(-1, 1)))


def write_stanford_dogs(root, folders=DOG_FOLDERS, n_train=2, n_test=1,
                        size=(40, 30)):
    """``images.tar`` + ``lists.tar`` layout: Images/ and *_list.mat.

    The .mat ``labels`` are 1-based positions in the sorted folder names.
    """
    label_of = {f: i + 1 for i, f in enumerate(sorted(folders))}
    lists = {'train': ([], []), 'test': ([], [])}
    for c, folder in enumerate(folders):
        synset = folder.split('-')[0]
        files = [f'{folder}/{synset}_{1000 + i}.jpg'
                 for i in range(n_train + n_test)]
        for i, rel in enumerate(files):
            write_jpeg(osp.join(root, 'Images', rel), size, seed=c * 100 + i)
        for split, rels in (('train', files[:n_train]),
                            ('test', files[n_train:])):
            lists[split][0].extend(rels)
            lists[split][1].extend([label_of[folder]] * len(rels))
    for split, (rels, labels) in lists.items():
        _dogs_mat(osp.join(root, f'{split}_list.mat'), rels, labels)
    _dogs_mat(osp.join(root, 'file_list.mat'),
              lists['train'][0] + lists['test'][0],
              lists['train'][1] + lists['test'][1])


def write_cub(root, folders=CUB_FOLDERS, n_train=2, n_test=1,
              size=(40, 30)):
    """``CUB_200_2011`` layout: images/ + the id-indexed .txt files.

    ``folders`` must be real CUB class folders (``NNN.Name``): mmpretrain's
    ``CUB`` names classes from its built-in list of the 200.
    """
    images, labels, is_train = [], [], []
    for c, folder in enumerate(folders):
        stem = folder.split('.', 1)[1].title()
        for i in range(n_train + n_test):
            rel = f'{folder}/{stem}_{i + 1:04d}_{796000 + c * 100 + i}.jpg'
            write_jpeg(osp.join(root, 'images', rel), size, seed=c * 100 + i)
            images.append(rel)
            labels.append(int(folder.split('.')[0]))
            is_train.append(int(i < n_train))
    ids = range(1, len(images) + 1)
    write_lines(osp.join(root, 'images.txt'),
                [f'{k} {rel}' for k, rel in zip(ids, images)])
    write_lines(osp.join(root, 'image_class_labels.txt'),
                [f'{k} {label}' for k, label in zip(ids, labels)])
    write_lines(osp.join(root, 'train_test_split.txt'),
                [f'{k} {t}' for k, t in zip(ids, is_train)])
    write_lines(osp.join(root, 'bounding_boxes.txt'),
                [f'{k} 2.0 3.0 30.0 20.0' for k in ids])
    write_lines(osp.join(root, 'classes.txt'), [
        f'{int(f.split(".")[0])} {f}' for f in folders])


def build_from_config(config, loader, data_root):
    """Build ``<loader>.dataset`` of base config ``config`` at ``data_root``.

    ``config`` is a file name in ``configs/_base_/datasets/`` and ``loader``
    e.g. ``'train_dataloader'``; built under mmpretrain's default scope.
    """
    cfg = Config.fromfile(osp.join(DATASET_CONFIGS, config))
    dataset_cfg = cfg[loader].dataset
    dataset_cfg.data_root = str(data_root)
    init_default_scope('mmpretrain')
    return DATASETS.build(dataset_cfg)
