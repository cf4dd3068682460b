"""tools/convert_to_student.py: a plain mmpretrain student from AFD."""
import os
import os.path as osp
import re
import subprocess
import sys

import mmpretrain
import numpy as np
import pytest
import torch
from cifar_fixture import write_cifar100
from conftest import REPO
from mmengine.config import Config
from mmpretrain.apis import ImageClassificationInferencer, get_model
from mmpretrain.models import ImageClassifier
from tiny_afd import MEAN, tiny_afd_config, train_tiny_afd

sys.path.insert(0, osp.join(REPO, 'tools'))
import convert_to_student  # noqa: E402

TINY = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')


@pytest.fixture(scope='module')
def afd_run(tmp_path_factory):
    """One tiny AFD epoch: (runner, checkpoint path)."""
    return train_tiny_afd(tmp_path_factory.mktemp('afd'), max_epochs=1)


def _images(num=3, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (32, 32, 3), dtype=np.uint8)
            for _ in range(num)]


def _batch(images):
    return dict(inputs=[torch.from_numpy(i).permute(2, 0, 1) for i in images])


def test_student_checkpoint_and_config(afd_run, tmp_path):
    runner, ckpt = afd_run
    out, cfg_path = convert_to_student.main([ckpt, str(tmp_path / 's.pth')])
    assert cfg_path == str(tmp_path / 's.py')
    saved = torch.load(out, weights_only=True)  # plain: no allow-list
    assert set(saved) == {'state_dict', 'meta'}
    assert set(saved['meta']) == {'dataset_meta'}
    assert saved['meta']['dataset_meta'] == \
        runner.train_dataloader.dataset.metainfo
    student = runner.model.student.state_dict()
    assert list(saved['state_dict']) == list(student)
    for key, value in student.items():
        assert torch.equal(saved['state_dict'][key], value), key
    cfg = Config.fromfile(cfg_path)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.type == 'afd_mm.CifarResNet'
    assert cfg.model.data_preprocessor.mean == MEAN
    assert cfg.custom_imports.imports == ['afd_mm']
    assert cfg.test_dataloader.dataset.split == 'test'
    assert cfg.test_evaluator.type == 'Accuracy'
    assert 'teacher' not in cfg.model and 'train_dataloader' not in cfg


def test_mmpretrain_apis_predict_as_the_distiller(afd_run, tmp_path):
    runner, ckpt = afd_run
    out, cfg_path = convert_to_student.main([ckpt, str(tmp_path / 's.pth')])
    model = get_model(cfg_path, pretrained=out)
    assert type(model) is ImageClassifier
    distiller = runner.model.eval()
    images = _images()
    with torch.no_grad():
        ours = model.test_step(_batch(images))
        theirs = distiller.test_step(_batch(images))
        inputs = torch.randn(4, 3, 32, 32)
        assert torch.equal(model(inputs, mode='tensor'),
                           distiller(inputs, mode='tensor'))
    for a, b in zip(ours, theirs):
        assert torch.equal(a.pred_score, b.pred_score)
    inferencer = ImageClassificationInferencer(cfg_path, pretrained=out,
                                               device='cpu')
    results = inferencer(images)
    classes = runner.train_dataloader.dataset.metainfo['classes']
    for result, expected in zip(results, theirs):
        np.testing.assert_allclose(result['pred_scores'],
                                   expected.pred_score.numpy(), atol=1e-6)
        assert result['pred_class'] == \
            classes[int(expected.pred_score.argmax())]


def test_config_from_the_command_line_when_meta_has_none(afd_run, tmp_path):
    runner, ckpt = afd_run
    checkpoint = torch.load(ckpt, weights_only=True)  # allow-listed
    del checkpoint['meta']['cfg']
    bare = str(tmp_path / 'bare.pth')
    torch.save(checkpoint, bare)
    out = str(tmp_path / 's.pth')
    with pytest.raises(KeyError, match='--config CONFIG'):
        convert_to_student.main([bare, out])
    afd_cfg = str(tmp_path / 'afd.py')
    runner.cfg.dump(afd_cfg)
    convert_to_student.main([bare, out, '--config', afd_cfg])
    assert Config.fromfile(str(tmp_path / 's.py')).model.type == \
        'ImageClassifier'


def test_checkpoint_without_student_keys_is_refused(tmp_path):
    plain = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': {'backbone.conv1.weight': torch.zeros(1)}},
               plain)
    with pytest.raises(ValueError, match='no `student.` keys'):
        convert_to_student.main([plain, str(tmp_path / 's.pth')])
    with pytest.raises(ValueError, match='give OUT a checkpoint name'):
        convert_to_student.main([plain, str(tmp_path / 's.py')])


def test_custom_imports_only_for_afd_mm_types(tmp_path):
    cfg = tiny_afd_config(tmp_path)
    cfg.model.student.backbone = dict(type='ResNet_CIFAR', depth=18)
    assert 'custom_imports' not in convert_to_student.student_config(cfg)
    del cfg.model.student
    with pytest.raises(KeyError, match='no `model.student`'):
        convert_to_student.student_config(cfg)


def _top1(log: str) -> float:
    """The top-1 an mmengine test run logs ('accuracy/top1: 25.0000')."""
    match = re.findall(r'accuracy/top1: ([0-9.]+)', log)
    assert match, log[-2000:]
    return float(match[-1])


def test_converted_student_passes_both_test_tools(tmp_path, monkeypatch):
    """Train -> test the AFD checkpoint -> convert -> test the student with
    our tools/test.py and mmpretrain's: the same top-1 each time."""
    import test as test_tool
    import train as train_tool
    data = write_cifar100(str(tmp_path / 'cifar'), num_train=16, num_test=8)
    monkeypatch.setenv('AFD_TEST_DATA', data)
    work = str(tmp_path / 'work')
    train_tool.main([TINY, '--work-dir', work, '--cfg-options',
                     'train_cfg.max_epochs=1', 'log_level=WARNING'])
    ckpt = osp.join(work, 'epoch_1.pth')
    afd_top1 = test_tool.main([TINY, ckpt, '--work-dir', work])
    out, cfg_path = convert_to_student.main(
        [ckpt, str(tmp_path / 'student.pth'), '--config', TINY])
    ours = test_tool.main([cfg_path, out, '--work-dir', work])
    assert ours['accuracy/top1'] == afd_top1['accuracy/top1']
    mmpretrain_test = osp.join(osp.dirname(mmpretrain.__file__), '.mim',
                               'tools', 'test.py')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        [REPO, osp.join(REPO, 'tests'), os.environ.get('PYTHONPATH', '')]))
    run = subprocess.run(
        [sys.executable, mmpretrain_test, cfg_path, out, '--work-dir',
         str(tmp_path / 'mmpretrain')], env=env, capture_output=True,
        text=True, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr[-3000:]
    assert _top1(run.stdout + run.stderr) == \
        pytest.approx(afd_top1['accuracy/top1'], abs=1e-4)


def test_stored_config_is_read_as_data_never_run(afd_run, tmp_path):
    _, ckpt = afd_run
    marker = tmp_path / 'config_ran'
    checkpoint = torch.load(ckpt, weights_only=True)
    stored = checkpoint['meta']['cfg']
    checkpoint['meta']['cfg'] = \
        f"{stored}\nran = open({str(marker)!r}, 'w').write('ran')\n"
    crafted = str(tmp_path / 'crafted.pth')
    torch.save(checkpoint, crafted)
    with pytest.raises(ValueError) as err:
        convert_to_student.main([crafted, str(tmp_path / 's.pth')])
    message = str(err.value)
    assert message.startswith(f"meta['cfg'] of {crafted}, line ")
    assert "`open('" in message and 'never executed' in message
    assert message.endswith('Pass the AFD run\'s config file with '
                            '--config CONFIG.')
    assert not marker.exists()
