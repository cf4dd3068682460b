"""AFDDistiller with mmdet detectors: their own losses, candidates of
backbone stages and FPN levels, padded batches whose size changes every
step, prediction by the student alone."""
import pytest
import torch
from conftest import require_mmdet, tiny_detector

require_mmdet()

from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.testing import demo_mm_inputs  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from afd_mm.registry import MODELS  # noqa: E402


def _distiller(kind='faster_rcnn', **kwargs):
    init_default_scope('mmpretrain')  # afd_mm's; the detectors: _scope_
    cfg = dict(type='afd_mm.AFDDistiller',
               student=tiny_detector(kind, base=8),
               teacher=tiny_detector(kind, base=16),
               distill_loss=dict(type='afd_mm.AFDLoss', loss_weight=5.0,
                                 embed_dim=8))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _batch(model, shapes, training=True):
    """A preprocessed batch of images of the given (H, W) (padded to one
    size divisible by 32, as mmdet's DetDataPreprocessor does)."""
    packed = demo_mm_inputs(len(shapes), [(3, h, w) for h, w in shapes],
                            num_items=[2] * len(shapes), num_classes=2)
    data = model.data_preprocessor(packed, training)
    return data['inputs'], data['data_samples']


def test_default_candidates_are_stages_and_fpn_levels():
    stages = [f'backbone.layer{i}' for i in range(1, 5)]
    faster = _distiller('faster_rcnn')
    assert faster.student_recorder.names == stages + [
        f'neck.fpn_convs.{i}' for i in range(4)]
    assert faster.teacher_recorder.names == faster.student_recorder.names
    retina = _distiller('retinanet')  # P6/P7 are convs: 5 levels
    assert retina.student_recorder.names == stages + [
        f'neck.fpn_convs.{i}' for i in range(5)]
    assert faster.distill_loss.student_channels == [8, 16, 32, 64] + [16] * 4
    assert faster.distill_loss.teacher_channels == [16, 32, 64, 128] + [32] * 4


def test_logit_kd_is_switched_off_for_detectors():
    model = _distiller(kd_weight=0.9)
    assert model.kd_weight == 0.0 and 'loss_kd' not in model.distill_keys


@pytest.mark.parametrize('kind', ['faster_rcnn', 'retinanet'])
def test_loss_with_batch_sizes_changing_every_step(kind):
    """The student's own losses plus AFD, on batches padded to 64 x 96,
    96 x 64 and 128 x 160: no fixed probe size, every size handled."""
    torch.manual_seed(0)
    model = _distiller(kind)
    model.train()
    for shapes in ([(64, 90), (50, 70)], [(96, 60), (70, 64)],
                   [(120, 150), (100, 130)]):
        inputs, samples = _batch(model, shapes)
        losses = model(inputs, samples, mode='loss')
        own = model.student.loss(inputs, samples).keys()
        assert set(losses) == set(own) | {'loss_afd'}
        assert torch.isfinite(losses['loss_afd']) and losses['loss_afd'] > 0
    total, _ = model.parse_losses(losses)
    total.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is not None
               for p in model.distill_loss.parameters())
    trainable = [(n, p) for n, p in model.student.named_parameters()
                 if p.requires_grad]
    assert all(p.grad is not None for n, p in trainable
               if n.startswith(('backbone.layer', 'neck.'))), \
        [n for n, p in trainable if p.grad is None]


def test_afd_term_depends_on_the_recorded_maps():
    """loss_afd reads this batch's student maps: scaling the student's
    FPN outputs changes it (its value is not a constant of the step)."""
    torch.manual_seed(0)
    model = _distiller()
    model.train()
    inputs, samples = _batch(model, [(64, 96), (64, 96)])
    first = model(inputs, samples, mode='loss')['loss_afd']
    with torch.no_grad():
        model.student.neck.fpn_convs[0].conv.weight.mul_(-3.0)
    second = model(inputs, samples, mode='loss')['loss_afd']
    assert not torch.allclose(first, second)


def test_predict_runs_the_student_alone():
    model = _distiller()
    model.eval()
    calls = []
    model.teacher.register_forward_pre_hook(lambda *a: calls.append(1))
    model.teacher.backbone.register_forward_pre_hook(
        lambda *a: calls.append(1))
    inputs, samples = _batch(model, [(64, 96), (80, 64)], training=False)
    with torch.no_grad():
        results = model(inputs, samples, mode='predict')
    assert len(results) == 2 and isinstance(results[0], DetDataSample)
    assert results[0].pred_instances.bboxes.shape[-1] == 4
    assert calls == []


def test_teacher_candidate_outside_extract_feat_is_refused():
    with pytest.raises(RuntimeError, match='runs extract_feat only'):
        _distiller(teacher_recorder=dict(
            type='afd_mm.FeatureRecorder', patterns='rpn_head.rpn_conv'))


def test_compile_is_refused_for_detectors():
    with pytest.raises(ValueError, match='classifier students only'):
        _distiller(compile=True)


def test_teacher_from_an_mmdet_config_path():
    """``teacher='mmdet::...'`` builds in mmdet's registry."""
    init_default_scope('mmpretrain')
    cfg = dict(type='afd_mm.AFDDistiller', student=tiny_detector(),
               teacher='mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
               distill_loss=dict(type='afd_mm.AFDLoss', embed_dim=8))
    model = MODELS.build(cfg)
    assert type(model.teacher).__name__ == 'RetinaNet'
    assert model.teacher_recorder.names[-1] == 'neck.fpn_convs.4'
