import pytest
from torch import nn

from afd_mm.models.candidates import match_modules, select


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
