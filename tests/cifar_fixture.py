"""A tiny CIFAR-100 in its real on-disk layout, for tests only.

``write_cifar100`` writes ``cifar-100-python/{train,test,meta}`` as the
authors' pickles. mmpretrain's ``CIFAR100`` checks the files' md5 against
the real archive's and would then try to download; the test-only subclass
``CIFAR100Fixture`` (registered in mmpretrain's DATASETS when this module is
imported, e.g. through a test config's ``custom_imports``) checks that the
files exist instead. The product never bypasses the check.
"""
import os
import os.path as osp
import pickle

import numpy as np
from mmpretrain.datasets import CIFAR100
from mmpretrain.registry import DATASETS

NUM_CLASSES = 100


def write_cifar100(root, num_train=16, num_test=8, seed=0):
    """Write a tiny CIFAR-100 under ``root``; returns ``root``."""
    rng = np.random.RandomState(seed)
    folder = osp.join(root, 'cifar-100-python')
    os.makedirs(folder, exist_ok=True)
    for name, num in (('train', num_train), ('test', num_test)):
        labels = [i % NUM_CLASSES for i in range(num)]
        data = rng.randint(0, 256, (num, 3 * 32 * 32), dtype=np.uint8)
        entry = {'data': data, 'fine_labels': labels,
                 'coarse_labels': [lbl // 5 for lbl in labels],
                 'filenames': [f'img_{i}.png' for i in range(num)]}
        with open(osp.join(folder, name), 'wb') as f:
            pickle.dump(entry, f)
    meta = {'fine_label_names': [f'class_{i}' for i in range(NUM_CLASSES)],
            'coarse_label_names': [f'super_{i}' for i in range(20)]}
    with open(osp.join(folder, 'meta'), 'wb') as f:
        pickle.dump(meta, f)
    return root


@DATASETS.register_module(force=True)
class CIFAR100Fixture(CIFAR100):
    """CIFAR100 without the md5 check (tests only)."""

    meta = dict(CIFAR100.meta, md5=None)

    def _check_integrity(self):
        root = osp.join(self.data_prefix['root'], self.base_folder)
        return all(osp.isfile(osp.join(root, name))
                   for name, _ in self.train_list + self.test_list)
