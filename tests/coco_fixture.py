"""A tiny COCO-format detection fixture, written in the real layout.

``write_coco(root)`` writes::

    root/images/<id>.png                  images of different sizes
    root/annotations/instances_train.json COCO 'images', 'annotations',
    root/annotations/instances_val.json   'categories' (ids from 1)

Each image holds one or two filled rectangles, colour by class ('red',
'blue'), on a grey background: learnable, and mmdet's ``CocoDataset`` and
``CocoMetric`` read it unchanged.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np

CLASSES = ('red', 'blue')
COLOURS = ((0, 0, 220), (220, 0, 0))  # BGR, as cv2 writes
# (H, W): sizes vary, so padded batches change size from batch to batch
SIZES = ((64, 96), (96, 64), (80, 80), (64, 72), (72, 96), (96, 80))


def _image(rng, height, width, num_boxes):
    img = np.full((height, width, 3), 128, np.uint8)
    boxes, labels = [], []
    for _ in range(num_boxes):
        w, h = rng.randint(16, width // 2), rng.randint(16, height // 2)
        x, y = rng.randint(0, width - w), rng.randint(0, height - h)
        label = int(rng.randint(len(CLASSES)))
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), COLOURS[label],
                      thickness=-1)
        boxes.append([float(x), float(y), float(w), float(h)])
        labels.append(label)
    return img, boxes, labels


def _split(root, name, ids, rng):
    images, annotations = [], []
    for img_id in ids:
        height, width = SIZES[img_id % len(SIZES)]
        img, boxes, labels = _image(rng, height, width, 1 + img_id % 2)
        file_name = f'{img_id:06d}.png'
        cv2.imwrite(osp.join(root, 'images', file_name), img)
        images.append(dict(id=img_id, file_name=file_name, width=width,
                           height=height))
        for box, label in zip(boxes, labels):
            annotations.append(dict(
                id=len(annotations) + 1 + 1000 * img_id, image_id=img_id,
                category_id=label + 1, bbox=box, area=box[2] * box[3],
                iscrowd=0))
    categories = [dict(id=i + 1, name=n, supercategory='shape')
                  for i, n in enumerate(CLASSES)]
    with open(osp.join(root, 'annotations', f'instances_{name}.json'),
              'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=categories), f)


def write_coco(root, num_train=4, num_val=2, seed=0):
    """Write the fixture under ``root``; returns ``root``."""
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    rng = np.random.RandomState(seed)
    _split(root, 'train', range(1, num_train + 1), rng)
    _split(root, 'val', range(num_train + 1, num_train + num_val + 1), rng)
    return root
