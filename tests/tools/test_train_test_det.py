"""End to end on detection: tools/train.py with AFD on a tiny COCO-format
fixture (CocoMetric validation), --resume, tools/test.py, and the converted
student loaded and run by mmdet's own API."""
import os.path as osp
import sys

import pytest
import torch
from conftest import REPO, require_mmdet

require_mmdet()

from coco_fixture import write_coco  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402

sys.path.insert(0, osp.join(REPO, 'tools'))
import convert_to_student  # noqa: E402
import test as test_tool  # noqa: E402
import train as train_tool  # noqa: E402

TINY = osp.join(REPO, 'tests', 'data', 'afd_tiny_coco.py')


@pytest.fixture
def data(tmp_path, monkeypatch):
    root = write_coco(str(tmp_path / 'coco'))
    monkeypatch.setenv('AFD_TEST_DATA', root)
    return root


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_train_resume_test_convert(data, tmp_path):
    work = str(tmp_path / 'work')
    runner = train_tool.main([TINY, '--work-dir', work, '--cfg-options',
                              'train_cfg.max_epochs=1'])
    assert runner.iter == 2 and osp.isfile(osp.join(work, 'epoch_1.pth'))
    first = _state(osp.join(work, 'epoch_1.pth'))
    assert any(k.startswith('distill_loss.') for k in first['state_dict'])
    logged = runner.message_hub.log_scalars
    assert {'train/loss_afd', 'train/loss_rpn_cls', 'train/loss_bbox'} <= \
        set(logged)
    assert 'val/coco/bbox_mAP' in logged  # CocoMetric ran on the student

    runner = train_tool.main([TINY, '--work-dir', work, '--resume',
                              '--cfg-options', 'train_cfg.max_epochs=2'])
    assert runner.epoch == 2 and runner.iter == 4  # continued
    second = _state(osp.join(work, 'epoch_2.pth'))
    changed = [k for k, v in second['state_dict'].items()
               if k.startswith('student.') and v.is_floating_point()
               and not torch.equal(v, first['state_dict'][k])]
    assert changed

    metrics = test_tool.main([TINY, osp.join(work, 'epoch_2.pth'),
                              '--work-dir', work])
    assert 0.0 <= metrics['coco/bbox_mAP'] <= 1.0

    out, cfg_path = convert_to_student.main(
        [osp.join(work, 'epoch_2.pth'), str(tmp_path / 'student.pth')])
    from mmdet.apis import inference_detector, init_detector
    # mmdet's API makes 'mmdet' the default scope: only for this block
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = init_detector(cfg_path, out, device='cpu')
        result = inference_detector(model, osp.join(data, 'images',
                                                    '000005.png'))
    student = second['state_dict']
    assert torch.equal(model.backbone.conv1.weight,
                       student['student.backbone.conv1.weight'])
    assert result.pred_instances.bboxes.shape[-1] == 4
    current = DefaultScope.get_current_instance()
    assert current is None or current.scope_name == 'mmpretrain'
