"""Shared tiny models for afd_mm's tests (CPU, seconds)."""
import os

import pytest
import torch
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

torch.set_num_threads(1)


def tiny_classifier(depth=8, num_classes=10, backbone=None):
    """An mmpretrain ImageClassifier config with a CIFAR ResNet."""
    return dict(
        type='ImageClassifier',
        backbone=backbone or dict(type='afd_mm.CifarResNet', depth=depth),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=64, topk=(1, )))


class Chain(nn.Module):
    """conv -> block(relu) -> block(relu), named like a backbone."""

    def __init__(self, inplace_after=False):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.layer2 = nn.Sequential(nn.ReLU(inplace=inplace_after),
                                    nn.Conv2d(4, 8, 3, padding=1))

    def forward(self, x):
        return self.layer2(self.layer1(self.stem(x)))


@pytest.fixture
def chain():
    return Chain()
