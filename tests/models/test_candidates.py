import pytest
from torch import nn

from afd_mm.models.candidates import (
    DETECTOR_STAGE_PATTERNS,
    default_patterns,
    is_detector,
    match_modules,
    select,
)


def _blocks(stages=3, per_stage=4):
    return nn.ModuleDict({
        f'layer{i + 1}': nn.Sequential(*[
            nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
            for _ in range(per_stage)]) for i in range(stages)})


def test_match_is_per_part_and_in_network_order():
    names = match_modules(_blocks(), 'layer*.*')
    assert names[:3] == ['layer1.0', 'layer1.1', 'layer1.2']
    assert len(names) == 12  # the blocks, not their inner conv / relu
    assert match_modules(_blocks(), ['layer3.3', 'layer1.0']) == [
        'layer1.0', 'layer3.3']


def test_no_match_lists_close_names():
    with pytest.raises(ValueError) as err:
        match_modules(_blocks(), 'layers*.*')
    msg = str(err.value)
    assert "'layers*.*' matches no module" in msg
    assert 'layer3.3' in msg and 'student_recorder' in msg


def test_select_stride_start_like_resnet110():
    names = [f'layer{s}.{b}' for s in (1, 2, 3) for b in range(18)]
    kept = select(names, stride=2, start=1)
    assert len(kept) == 27
    assert kept[:2] == ['layer1.1', 'layer1.3'] and kept[-1] == 'layer3.17'


def test_select_interval_and_random():
    names = [str(i) for i in range(12)]
    assert select(names, mode='interval', num=4) == ['2', '5', '8', '11']
    a = select(names, mode='random', num=5, seed=3)
    assert a == select(names, mode='random', num=5, seed=3)
    assert len(set(a)) == 5 and a == sorted(a, key=int)
    assert a != select(names, mode='random', num=5, seed=4)


def test_select_indices_and_errors():
    names = ['a', 'b', 'c']
    assert select(names, indices=[-1, 0]) == ['c', 'a']
    with pytest.raises(ValueError, match=r'`indices` \[5\] are out of range'):
        select(names, indices=[5])
    with pytest.raises(ValueError, match="`mode`='every' is unknown"):
        select(names, mode='every')
    with pytest.raises(ValueError, match="mode 'random' needs `num`"):
        select(names, mode='random')
    with pytest.raises(ValueError, match='need stride >= 1'):
        select(names, stride=0)


class BaseDetector(nn.Module):
    """Stands for mmdet's base class: detectors are told by its name."""


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        for i in range(1, 5):
            self.add_module(f'layer{i}', nn.Sequential(nn.Conv2d(4, 4, 1)))


class FPN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fpn_convs = nn.ModuleList(nn.Conv2d(4, 4, 1) for _ in range(3))


class OddNeck(nn.Module):
    pass


def _detector(backbone, neck=None):
    model = BaseDetector()
    model.backbone = backbone
    if neck is not None:
        model.neck = neck
    return model


def test_detector_defaults_are_stages_then_neck_levels():
    model = _detector(ResNet(), FPN())
    assert is_detector(model) and not is_detector(nn.Sequential())
    patterns = default_patterns(model)
    assert match_modules(model, patterns) == [
        'backbone.layer1', 'backbone.layer2', 'backbone.layer3',
        'backbone.layer4', 'neck.fpn_convs.0', 'neck.fpn_convs.1',
        'neck.fpn_convs.2']
    # no neck: the stages alone
    assert default_patterns(_detector(ResNet())) == list(
        DETECTOR_STAGE_PATTERNS['ResNet'])


def test_detector_without_a_default_names_the_families():
    with pytest.raises(ValueError, match=r"detector neck OddNeck .*'FPN'"):
        default_patterns(_detector(ResNet(), OddNeck()))
    with pytest.raises(ValueError,
                       match=r"detector backbone Conv2d .*'CSPDarknet'"):
        default_patterns(_detector(nn.Conv2d(3, 4, 1)))
