import copy
import logging

import pytest
import torch
from conftest import tiny_classifier
from mmpretrain.structures import DataSample

from afd_mm.models.distiller import AFDDistiller


def _distiller(**kwargs):
    args = dict(student=tiny_classifier(8), teacher=tiny_classifier(14))
    args.update(kwargs)
    return AFDDistiller(**args)


def _batch(n=4, num_classes=10, size=32):
    inputs = torch.randn(n, 3, size, size)
    samples = [DataSample().set_gt_label(i % num_classes) for i in range(n)]
    return inputs, samples


def test_loss_terms_and_candidates():
    model = _distiller()
    assert len(model.student_recorder.names) == 3
    assert len(model.teacher_recorder.names) == 6
    assert model.distill_loss.last_alpha is None
    losses = model(*_batch(), mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd', 'loss_afd'}
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.distill_loss.last_alpha.shape == (6, 3)


def test_teacher_frozen_and_gradients_reach_student_and_meta_network():
    model = _distiller()
    model.train()
    assert model.student.training and not model.teacher.training
    assert not any(p.requires_grad for p in model.teacher.parameters())
    losses = model(*_batch(), mode='loss')
    sum(losses.values()).backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    for name, p in model.student.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    meta = list(model.distill_loss.named_parameters())
    assert meta and all(p.grad is not None for _, p in meta)


def test_teacher_buffers_untouched_by_training_forward():
    model = _distiller()
    before = copy.deepcopy(model.teacher.state_dict())
    model.train()
    model(*_batch(), mode='loss')
    after = model.teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_kd_off_when_class_counts_differ():
    model = _distiller(teacher=tiny_classifier(14, num_classes=20))
    assert model.kd_weight == 0.0
    assert 'loss_kd' not in model(*_batch(), mode='loss')


def test_predict_runs_the_student_alone():
    model = _distiller().eval()
    inputs, samples = _batch()
    preds = model(inputs, copy.deepcopy(samples), mode='predict')
    ref = model.student(inputs, copy.deepcopy(samples), mode='predict')
    assert torch.equal(torch.stack([p.pred_score for p in preds]),
                       torch.stack([p.pred_score for p in ref]))
    assert torch.equal(model(inputs), model.student(inputs))


def test_teacher_checkpoint_loads_and_survives_init_weights(tmp_path):
    from mmpretrain.registry import MODELS
    teacher = MODELS.build(tiny_classifier(14))
    for p in teacher.parameters():
        torch.nn.init.normal_(p)
    ckpt = tmp_path / 'teacher.pth'
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, ckpt)
    model = _distiller(teacher_ckpt=str(ckpt))
    model.init_weights()  # what the Runner does before training
    for k, v in teacher.state_dict().items():
        assert torch.equal(model.teacher.state_dict()[k], v), k


def test_teacher_checkpoint_of_another_architecture(tmp_path):
    from mmpretrain.registry import MODELS
    other = MODELS.build(tiny_classifier(20))
    ckpt = tmp_path / 'r20.pth'
    torch.save({'state_dict': other.state_dict()}, ckpt)
    with pytest.raises(ValueError) as err:
        _distiller(teacher_ckpt=str(ckpt))
    msg = str(err.value)
    assert 'unexpected keys' in msg and 'backbone.layer1.2' in msg
    assert '`teacher_ckpt`' in msg


def test_teacher_from_config_path():
    model = _distiller(teacher='afd_mm::teachers/resnet56_cifar100.py',
                       kd_weight=0.0)
    assert model.teacher.backbone.depth == 56
    assert len(model.teacher_recorder.names) == 27


def test_recorder_errors_name_the_config_key():
    bad = dict(type='afd_mm.FeatureRecorder', patterns='backbone.stage*.*')
    with pytest.raises(ValueError, match=r'`model.student_recorder`: '
                       r"Recorder pattern 'backbone.stage\*.\*'"):
        _distiller(student_recorder=bad)
    empty = dict(type='afd_mm.FeatureRecorder', patterns='backbone.layer*.*',
                 indices=[])
    with pytest.raises(ValueError, match='`model.teacher_recorder` selected '
                       'zero candidates'):
        _distiller(teacher_recorder=empty)


def test_probe_size_mismatch_names_the_key():
    model = _distiller()
    with pytest.raises(ValueError, match=r'set `model.probe_size=\(16, 16\)`'):
        model(*_batch(size=16), mode='loss')


def test_non_finite_loss_stops_with_advice():
    model = _distiller(distill_loss=dict(type='afd_mm.AFDLoss',
                                         loss_weight=float('inf')))
    with pytest.raises(FloatingPointError) as err:
        model(*_batch(), mode='loss')
    msg = str(err.value)
    assert "['loss_afd']" in msg and 'beta' in msg and 'lr' in msg


def test_data_preprocessor_from_config_dict():
    model = _distiller(data_preprocessor=dict(mean=[1.0] * 3, std=[2.0] * 3))
    out = model.data_preprocessor(
        dict(inputs=[torch.full((3, 4, 4), 3, dtype=torch.uint8)]))
    assert type(model.data_preprocessor).__name__ == 'ClsDataPreprocessor'
    assert torch.allclose(out['inputs'], torch.ones(1, 3, 4, 4))


def test_student_batch_augments_reach_the_preprocessor():
    student = tiny_classifier(8)
    student['train_cfg'] = dict(augments=dict(type='Mixup', alpha=0.8))
    model = _distiller(student=student,
                       data_preprocessor=dict(num_classes=10))
    augments = model.data_preprocessor.batch_augments
    assert augments is not None
    assert type(augments.augments[0]).__name__ == 'Mixup'
    _, samples = _batch()
    data = model.data_preprocessor(dict(
        inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
                for _ in samples], data_samples=samples), training=True)
    assert data['data_samples'][0].gt_score.shape == (10, )  # mixed labels
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss_cls'])


def test_afd_recorders_keep_the_loss_descriptors_same_loss():
    """The recorders apply AFDLoss.feature_transform in their hooks: the
    loss gets (g, v) of each candidate, and the same value as from the
    maps reduced afterwards."""
    torch.manual_seed(0)
    model = _distiller().double()
    transform = model.distill_loss.feature_transform
    assert model.teacher_recorder.transform is transform
    assert model.student_recorder.transform is transform
    inputs, samples = _batch()
    inputs = inputs.double()
    losses = model(inputs, samples, mode='loss')
    model.teacher_recorder.transform = None
    model.student_recorder.transform = None
    with torch.no_grad(), model.teacher_recorder.record() as t_feats:
        model.teacher(inputs, mode='tensor')
    with model.student_recorder.record() as s_feats:
        model.student.extract_feat(inputs)
    assert all(h.dim() == 4 for h in t_feats + s_feats)  # maps
    expected = model.distill_loss([transform(h) for h in t_feats],
                                  [transform(h) for h in s_feats])
    assert losses['loss_afd'].item() == pytest.approx(expected.item(),
                                                      rel=1e-12)


def test_nothing_recorded_without_distill_loss(monkeypatch):
    model = _distiller(distill_loss=None)
    monkeypatch.setattr(model.teacher_recorder, 'record', None)
    monkeypatch.setattr(model.student_recorder, 'record', None)
    losses = model(*_batch(), mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd'}


def _losses_and_grads(model, inputs, samples):
    model.zero_grad()
    losses = model(inputs, samples, mode='loss')
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


def test_compiled_equals_eager_and_survives_another_batch_size():
    """``compile=True``: the same loss terms and gradients as eager within
    float32 tolerance, also for a last batch of another size, without a
    graph break; the state dict and module tree are the eager model's."""
    from torch._dynamo.utils import counters
    counters.clear()
    torch.manual_seed(0)
    eager = _distiller()
    compiled = _distiller(compile=True)
    compiled.load_state_dict(eager.state_dict())
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    for n in (4, 3):  # a full batch, then a smaller last one
        inputs, samples = _batch(n)
        want, want_grads = _losses_and_grads(eager, inputs, samples)
        got, got_grads = _losses_and_grads(compiled, inputs, samples)
        assert got.keys() == want.keys() == {'loss_cls', 'loss_kd',
                                             'loss_afd'}
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-4,
                                       atol=1e-5)
        assert got_grads.keys() == want_grads.keys()
        for name in want_grads:
            # Linear biases before a training-mode BN have zero gradient
            # up to rounding (~1e-5 here), which no relative check fits
            torch.testing.assert_close(got_grads[name], want_grads[name],
                                       rtol=1e-3, atol=1e-4)
    assert dict(counters['graph_break']) == {}
    # eval runs the student alone, uncompiled, as in eager
    compiled.eval()
    assert compiled(inputs, mode='tensor').shape == (3, 10)


def test_compile_memory_budget_is_set_while_the_compiled_code_runs(
        monkeypatch):
    """``activation_memory_budget`` is the distiller's key, not
    torch.compile's: it is in force during each compiled call (and so
    during compilation), restored after; 1.0 adds no wrapper."""
    import torch._functorch.config as functorch_config

    from afd_mm.models import distiller as distiller_mod
    seen, passed = [], []

    def fake_compile(fn, **options):
        passed.append(options)
        return lambda *a, **k: seen.append(
            functorch_config.activation_memory_budget)

    monkeypatch.setattr(distiller_mod.torch, 'compile', fake_compile)
    before = functorch_config.activation_memory_budget
    model = _distiller(compile=dict(activation_memory_budget=0.3,
                                    dynamic=True))
    assert passed == [{'dynamic': True}] * 2  # student forward, AFD loss
    model._compiled['student'](None)
    assert seen == [0.3]
    assert functorch_config.activation_memory_budget == before
    default = _distiller(compile=True)
    default._compiled['loss_afd'](None)
    assert seen[-1] == distiller_mod.COMPILE_MEMORY_BUDGET == 0.5
    assert hasattr(default._compiled['loss_afd'], '__wrapped__')
    off = _distiller(compile=dict(activation_memory_budget=1.0))
    assert not hasattr(off._compiled['student'], '__wrapped__')  # as is


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='needs a CUDA device')
@pytest.mark.parametrize('options', [True, {'mode': 'reduce-overhead'}])
def test_cuda_compiled_equals_eager(options):
    """On a GPU, compiled (also with CUDA graphs) == eager."""
    torch.manual_seed(0)
    eager = _distiller().cuda()
    compiled = _distiller(compile=options).cuda()
    compiled.load_state_dict(eager.state_dict())
    inputs, samples = _batch(4)
    inputs = inputs.cuda()
    for _ in range(3):  # CUDA graphs record after warm-up runs
        want, want_grads = _losses_and_grads(eager, inputs, samples)
        got, got_grads = _losses_and_grads(compiled, inputs, samples)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4,
                                   atol=1e-5)
    for name in want_grads:
        torch.testing.assert_close(got_grads[name], want_grads[name],
                                   rtol=1e-3, atol=1e-4)


def test_plain_student_checkpoint_loads_into_the_student(tmp_path):
    from mmengine.runner import load_checkpoint
    model = _distiller()
    source = _distiller()
    teacher = copy.deepcopy(model.teacher.state_dict())
    path = str(tmp_path / 'student.pth')
    torch.save(dict(state_dict=source.student.state_dict()), path)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    for key, value in source.student.state_dict().items():
        assert torch.equal(model.student.state_dict()[key], value), key
    for key, value in teacher.items():
        assert torch.equal(model.teacher.state_dict()[key], value), key
    afd = dict(state_dict=source.state_dict())  # an AFD run's: unchanged
    torch.save(afd, path)
    load_checkpoint(model, path, map_location='cpu', strict=True)
    assert torch.equal(model.teacher.backbone.conv1.weight,
                       source.teacher.backbone.conv1.weight)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    from mmengine.runner import load_checkpoint
    model = _distiller()
    path = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=_distiller().teacher.state_dict()), path)
    with pytest.raises(ValueError, match='do not fit the student') as err:
        load_checkpoint(model, path, map_location='cpu')
    assert 'backbone.layer1.1' in str(err.value)
    assert 'load_from' in str(err.value)


def test_teacher_with_its_own_normalisation_gets_the_batch_renormalised():
    from mmengine.logging import MMLogger
    teacher = dict(tiny_classifier(14), data_preprocessor=dict(
        mean=[0.0, 10.0, 20.0], std=[1.0, 2.0, 4.0], to_rgb=True))
    logger = MMLogger.get_current_instance()
    messages = []
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    try:
        model = _distiller(teacher=teacher, data_preprocessor=dict(
            mean=[100.0, 110.0, 120.0], std=[50.0, 60.0, 70.0]))
    finally:
        logger.removeHandler(handler)
    assert sum('re-normalised' in m for m in messages) == 1
    seen = []
    model.teacher.register_forward_pre_hook(
        lambda _, args: seen.append(args[0]))
    inputs, samples = _batch()
    model.train()
    model(inputs, samples, mode='loss')
    raw = inputs * torch.tensor([50.0, 60.0, 70.0]).view(3, 1, 1) + \
        torch.tensor([100.0, 110.0, 120.0]).view(3, 1, 1)  # BGR pixels
    expected = (raw.flip(1) - torch.tensor([0.0, 10.0, 20.0]).view(
        3, 1, 1)) / torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1)
    torch.testing.assert_close(seen[0], expected)


def test_teacher_with_the_same_normalisation_is_left_alone():
    norm = dict(mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0])
    model = _distiller(teacher=dict(tiny_classifier(14),
                                    data_preprocessor=norm),
                       data_preprocessor=norm)
    assert model._teacher_norm is None
    assert _distiller()._teacher_norm is None


class _ListHandler(logging.Handler):
    def __init__(self, messages):
        super().__init__()
        self.messages = messages

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_build_logs_one_candidate_table_per_side():
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    messages = []
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    try:
        _distiller()
    finally:
        logger.removeHandler(handler)
    tables = [m for m in messages if ' candidates (' in m]
    assert [t.splitlines()[0] for t in tables] == [
        'teacher candidates (6):', 'student candidates (3):']
    assert '      2  backbone.layer3.0  (64, 8, 8)' in tables[1]
