"""Several distillation losses in one distiller (distill_losses.py)."""
import pytest
import torch
from conftest import tiny_classifier
from mmpretrain.structures import DataSample

from afd_mm.models import distill_losses as dl
from afd_mm.models.distiller import AFDDistiller
from afd_mm.models.losses.at_loss import at_pair_loss
from afd_mm.models.losses.dkd_loss import dkd_loss
from afd_mm.models.losses.kd_loss import kd_loss

STAGE_ENDS_S = dict(type='afd_mm.FeatureRecorder',
                    patterns='backbone.layer*.0')  # ResNet-8: 1 block/stage
STAGE_ENDS_T = dict(type='afd_mm.FeatureRecorder',
                    patterns='backbone.layer*.1')  # ResNet-14: 2 per stage
LOGITS = dict(type='afd_mm.FeatureRecorder', patterns='head.fc')


def _distiller(distill_loss, **kwargs):
    return AFDDistiller(student=tiny_classifier(8),
                        teacher=tiny_classifier(14),
                        distill_loss=distill_loss, **kwargs)


def _batch(n=4):
    torch.manual_seed(0)
    return (torch.randn(n, 3, 32, 32),
            [DataSample().set_gt_label(i % 10) for i in range(n)])


def _record(model, inputs, s_rec, t_rec):
    with torch.no_grad(), t_rec.record() as t_feats:
        model.teacher(inputs, mode='tensor')
    with s_rec.record() as s_feats:
        model.student(inputs, mode='tensor')
    return t_feats, s_feats


def test_loss_configs_forms_and_errors():
    at = dict(type='afd_mm.ATLoss')
    assert dl.loss_configs(None) == []
    assert dl.loss_configs(at) == [(None, at)]
    assert dl.loss_configs([at, at]) == [(None, at), (None, at)]
    assert dl.loss_configs(dict(a=at)) == [('a', at)]
    with pytest.raises(TypeError, match=r"`model.distill_loss`\['a'\] must "
                       'be a loss config with a `type`'):
        dl.loss_configs(dict(a=dict(loss_weight=1)))
    with pytest.raises(TypeError, match='a list of them or a dict'):
        dl.loss_configs('afd_mm.ATLoss')


def test_list_with_own_and_shared_recorders():
    model = _distiller(
        [dict(type='afd_mm.AFDLoss', loss_weight=2.0),
         dict(type='afd_mm.ATLoss', loss_weight=10.0,
              student_recorder=STAGE_ENDS_S, teacher_recorder=STAGE_ENDS_T)],
        kd_weight=0.9)
    afd, at = model.loss_terms
    assert (afd.key, at.key) == ('loss_afd', 'loss_at')
    assert afd.student_recorder is model.student_recorder
    assert at.student_recorder is not model.student_recorder
    assert at.teacher_recorder.names == ['backbone.layer1.1',
                                         'backbone.layer2.1',
                                         'backbone.layer3.1']
    assert model.distill_keys == ['loss_kd', 'loss_afd', 'loss_at']
    assert set(model.distill_loss) == {'loss_afd', 'loss_at'}  # ModuleDict
    inputs, samples = _batch()
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_kd', 'loss_afd', 'loss_at'}
    t_feats, s_feats = _record(model, inputs, at.student_recorder,
                               at.teacher_recorder)
    expected = 10.0 * sum(at_pair_loss(s, t) for t, s in zip(t_feats,
                                                              s_feats))
    assert losses['loss_at'].item() == pytest.approx(expected.item(),
                                                     rel=1e-5)
    t_feats, s_feats = _record(model, inputs, model.student_recorder,
                               model.teacher_recorder)
    assert losses['loss_afd'].item() == pytest.approx(
        afd.loss(t_feats, s_feats).item(), rel=1e-5)
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        if not name.startswith('teacher.'):
            assert p.grad is not None, name
    assert all(p.grad is None for p in model.teacher.parameters())


def test_dict_names_give_log_keys_and_state_dict_prefix():
    at = dict(type='afd_mm.ATLoss', student_recorder=STAGE_ENDS_S,
              teacher_recorder=STAGE_ENDS_T)
    dkd = dict(type='afd_mm.DKDLoss', beta=2.0, student_recorder=LOGITS,
               teacher_recorder=LOGITS)
    model = _distiller(dict(at=at, loss_dkd=dkd), kd_weight=0.0)
    assert [t.key for t in model.loss_terms] == ['loss_at', 'loss_dkd']
    inputs, samples = _batch()
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_at', 'loss_dkd'}
    t_logits = model.teacher(inputs, mode='tensor')
    s_logits = model.student(inputs, mode='tensor')
    target = torch.tensor([s.gt_label.item() for s in samples])
    assert losses['loss_dkd'].item() == pytest.approx(
        dkd_loss(s_logits, t_logits, target, 1.0, 2.0, 4.0).item(),
        rel=1e-5)


def test_same_key_twice_asks_for_the_dict_form():
    at = dict(type='afd_mm.ATLoss', student_recorder=STAGE_ENDS_S,
              teacher_recorder=STAGE_ENDS_T)
    with pytest.raises(ValueError, match=r"\['loss_at'\] twice.*dict name"):
        _distiller([at, at])
    with pytest.raises(ValueError, match=r"\['loss_kd'\] twice"):
        _distiller(dict(kd=at))


def test_kd_cannot_be_configured_twice():
    kd = dict(type='afd_mm.KDLoss', student_recorder=LOGITS,
              teacher_recorder=LOGITS)
    with pytest.raises(ValueError, match=r'KD is configured twice: '
                       r'`model.kd_weight=0.9`.*\[.loss_kd_logits.\].*'
                       '`kd_weight=0`'):
        _distiller([dict(type='afd_mm.AFDLoss'), kd], kd_weight=0.9)
    with pytest.raises(ValueError, match='KD is configured twice'):
        _distiller(dict(kd, student_recorder=None, teacher_recorder=None),
                   student_recorder=LOGITS, teacher_recorder=LOGITS)
    model = _distiller([dict(type='afd_mm.AFDLoss'), kd], kd_weight=0.0)
    assert 'loss_kd_logits' in model(*_batch(), mode='loss')


def test_own_recorder_errors_name_the_loss():
    bad = dict(type='afd_mm.FeatureRecorder', patterns='backbone.nope*')
    with pytest.raises(ValueError, match=r'`model.distill_loss.at.'
                       r'teacher_recorder`'):
        _distiller(dict(at=dict(type='afd_mm.ATLoss',
                                teacher_recorder=bad)))


def test_transform_only_on_a_recorder_of_one_loss():
    """AFD + RKD share the distiller's recorders: they keep the maps, and
    AFD's descriptors are formed for it; AFD alone gets them in the hook,
    with the same loss value."""
    torch.manual_seed(0)
    shared = _distiller([dict(type='afd_mm.AFDLoss'),
                         dict(type='afd_mm.RKDLoss')])
    afd = shared.loss_terms[0].loss
    assert shared.student_recorder.transform is None
    assert shared.teacher_recorder.transform is None
    alone = _distiller(dict(type='afd_mm.AFDLoss'))
    assert alone.student_recorder.transform is alone.distill_loss.\
        feature_transform
    alone.distill_loss.load_state_dict(afd.state_dict())
    alone.student.load_state_dict(shared.student.state_dict())
    alone.teacher.load_state_dict(shared.teacher.state_dict())
    inputs, samples = _batch()
    losses = shared(inputs, samples, mode='loss')
    assert 'loss_rkd' in losses
    torch.testing.assert_close(losses['loss_afd'],
                               alone(inputs, samples, mode='loss')['loss_afd'])


def test_kd_standardize():
    model = _distiller(None, kd_standardize=True, kd_temperature=2.0)
    inputs, samples = _batch()
    losses = model(inputs, samples, mode='loss')
    t_logits = model.teacher(inputs, mode='tensor')
    s_logits = model.student(inputs, mode='tensor')
    assert losses['loss_kd'].item() == pytest.approx(
        0.9 * kd_loss(s_logits, t_logits, 2.0, standardize=True).item(),
        rel=1e-5)
