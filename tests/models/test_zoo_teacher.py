"""Model-zoo teacher names: metadata lookup and weights, no network."""
import os
import os.path as osp
from urllib.error import URLError

import pytest
import torch
from conftest import tiny_classifier

from afd_mm.models.distiller import AFDDistiller
from afd_mm.models.zoo_teacher import is_zoo_name, zoo_teacher
from afd_mm.registry import MODELS

NAME = 'resnet34_8xb32_in1k'
FILE = 'resnet34_8xb32_in1k_20210831-f257d4e6.pth'


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """torch hub's folder in tmp_path; any download fails as offline."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setattr(torch.hub, '_hub_dir', None)

    def no_network(url, dst, *args, **kwargs):
        raise URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_network)
    return osp.join(str(tmp_path / 'torch'), 'hub', 'checkpoints')


def test_metadata_lookup():
    model, url = zoo_teacher(NAME)
    assert model['type'] == 'ImageClassifier'
    assert model['backbone']['depth'] == 34
    assert url == ('https://download.openmmlab.com/mmclassification/v0/'
                   f'resnet/{FILE}')


def test_unknown_name_lists_close_ones():
    with pytest.raises(KeyError, match=r"'resnet34_8xb32_in1kk'.*"
                       r"closest names: \['resnet34_8xb32_in1k'"):
        zoo_teacher('resnet34_8xb32_in1kk')


def test_names_and_paths():
    assert is_zoo_name(NAME)
    assert not is_zoo_name('mmpretrain::resnet/resnet34_8xb32_in1k.py')
    assert not is_zoo_name('configs/teachers/resnet56_cifar100.py')


def _student():
    return tiny_classifier(8, num_classes=1000)


def test_offline_error_names_the_cache_folder(offline):
    with pytest.raises(OSError) as err:
        AFDDistiller(student=_student(), teacher=NAME, distill_loss=None)
    msg = str(err.value)
    assert osp.join(offline, FILE) in msg and 'offline' in msg.lower()
    assert '`teacher_ckpt`' in msg


def test_manual_copy_in_the_cache_is_picked_up(offline):
    os.makedirs(offline)
    teacher = MODELS.build(zoo_teacher(NAME)[0])
    for p in teacher.parameters():
        torch.nn.init.normal_(p)
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}},
               osp.join(offline, FILE))
    model = AFDDistiller(student=_student(), teacher=NAME, distill_loss=None)
    assert model.kd_weight == 0.9  # 1000 classes on both sides
    model.init_weights()
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_teacher_ckpt_overrides(offline, tmp_path):
    teacher = MODELS.build(zoo_teacher(NAME)[0])
    ckpt = str(tmp_path / 'mine.pth')
    torch.save(teacher.state_dict(), ckpt)
    model = AFDDistiller(student=_student(), teacher=NAME, teacher_ckpt=ckpt,
                         distill_loss=None)  # no download attempted
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k

