"""tools/list_candidates.py: the candidates of a config, without training,
and AT/FitNet index pairs of equal spatial size."""
import os.path as osp
import sys

import pytest
from conftest import REPO

from afd_mm.models.candidates import candidate_table, equal_size_pairs
from afd_mm.utils.config import train_crop_size

sys.path.insert(0, osp.join(REPO, 'tools'))
import list_candidates  # noqa: E402


def test_lists_both_sides_and_suggests_stage_end_pairs():
    text = list_candidates.main(
        [osp.join(REPO, 'configs', 'afd_r56_r20_cifar100.py')])
    assert 'teacher candidates (27):' in text
    assert 'student candidates (9):' in text
    assert '     26  backbone.layer3.8  (64, 8, 8)' in text
    assert ('--cfg-options model.teacher_recorder.indices=[8,17,26] '
            'model.student_recorder.indices=[2,5,8]') in text


def test_refuses_a_plain_classifier_config():
    with pytest.raises(ValueError, match="model.type='afd_mm.AFDDistiller'"):
        list_candidates.main(
            [osp.join(REPO, 'configs', 'teachers', 'resnet56_cifar100.py')])


def test_table_and_pairs():
    table = candidate_table('student', ['a.b', 'c'], [(4, 8, 8), (5,)])
    assert table.splitlines() == [
        'student candidates (2):', '  index  module  shape',
        '      0  a.b     (4, 8, 8)', '      1  c       (5,)']
    t = [(8, 16, 16), (8, 16, 16), (16, 8, 8), (32, 4, 4)]
    s = [(4, 16, 16), (8, 8, 8), (8, 8, 8), (10,)]
    assert equal_size_pairs(t, s) == ([1, 2], [0, 2])


def test_probe_size_from_the_training_crop():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs',
                                   'afd_r34_r18_imagenet.py'))
    assert train_crop_size(cfg) == (224, 224)
    del cfg.model['probe_size']
    model = list_candidates.build(cfg)
    assert model.probe_size == (224, 224)
