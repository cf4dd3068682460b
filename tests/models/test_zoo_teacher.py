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
from afd_mm.utils.checkpoint import cached_path

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
    return cached_path(zoo_teacher(NAME)[1])


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
    assert offline in msg and 'offline' in msg.lower()
    assert offline.endswith(FILE)
    assert '`teacher_ckpt`' in msg


def _random_teacher(path):
    teacher = MODELS.build(zoo_teacher(NAME)[0])
    for p in teacher.parameters():
        torch.nn.init.normal_(p)
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return teacher


def test_manual_copy_in_the_cache_is_picked_up(offline, monkeypatch):
    """A file copied by hand to the cache path is used offline (here for
    a URL whose file name carries no hash prefix to verify)."""
    import afd_mm.models.distiller as distiller
    url = 'https://example.invalid/weights/resnet34.pth'
    monkeypatch.setattr(distiller, 'zoo_teacher',
                        lambda name: (zoo_teacher(name)[0], url))
    teacher = _random_teacher(cached_path(url))
    model = AFDDistiller(student=_student(), teacher=NAME, distill_loss=None)
    assert model.kd_weight == 0.9  # 1000 classes on both sides
    model.init_weights()
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_manual_copy_with_the_wrong_hash_is_refused(offline):
    _random_teacher(offline)  # its SHA-256 does not start with f257d4e6
    with pytest.raises(RuntimeError, match=r'Hash mismatch: .*' + FILE):
        AFDDistiller(student=_student(), teacher=NAME, distill_loss=None)


def test_teacher_ckpt_overrides(offline, tmp_path):
    teacher = MODELS.build(zoo_teacher(NAME)[0])
    ckpt = str(tmp_path / 'mine.pth')
    torch.save(teacher.state_dict(), ckpt)
    model = AFDDistiller(student=_student(), teacher=NAME, teacher_ckpt=ckpt,
                         distill_loss=None)  # no download attempted
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k

