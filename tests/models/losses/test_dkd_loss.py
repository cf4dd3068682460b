import math

import pytest
import torch
from mmpretrain.structures import DataSample

from afd_mm.models.losses.dkd_loss import DKDLoss, dkd_loss
from afd_mm.registry import MODELS


def _softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def slow_dkd(s, t, target, alpha, beta, temperature):
    """Loop version of the paper's Eq. 2, 3, 7: per sample, per class."""
    total = 0.0
    for b in range(len(s)):
        zs = [float(v) / temperature for v in s[b]]
        zt = [float(v) / temperature for v in t[b]]
        g = int(target[b])
        ps, pt = _softmax(zs), _softmax(zt)
        bs, bt = (ps[g], 1 - ps[g]), (pt[g], 1 - pt[g])
        tckd = sum(bt[i] * math.log(bt[i] / bs[i]) for i in range(2))
        others = [k for k in range(len(zs)) if k != g]
        qs = _softmax([zs[k] for k in others])
        qt = _softmax([zt[k] for k in others])
        nckd = sum(qt[i] * math.log(qt[i] / qs[i]) for i in range(len(qs)))
        total += alpha * tckd + beta * nckd
    return total / len(s) * temperature**2


def _samples(target):
    return [DataSample().set_gt_label(int(k)) for k in target]


def test_matches_loop_version():
    torch.manual_seed(0)
    s, t = torch.randn(4, 6) * 2, torch.randn(4, 6) * 3
    target = torch.tensor([0, 5, 2, 2])
    out = dkd_loss(s, t, target, 1.0, 8.0, 4.0)
    assert out.item() == pytest.approx(
        slow_dkd(s, t, target, 1.0, 8.0, 4.0), rel=1e-5)
    out = dkd_loss(s, t, target, 0.5, 2.0, 1.0)
    assert out.item() == pytest.approx(
        slow_dkd(s, t, target, 0.5, 2.0, 1.0), rel=1e-5)


def test_alpha_beta_one_recovers_kd_decomposition():
    # paper Eq. 4: KD = TCKD + (1 - p_t_gt) NCKD; equal logits give zero
    z = torch.randn(3, 5)
    assert dkd_loss(z, z.clone(), torch.tensor([0, 1, 2])).item() == \
        pytest.approx(0.0, abs=1e-6)


def test_module_reads_labels_and_weight():
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='afd_mm.DKDLoss', teacher_shapes=[(5,)],
                             student_shapes=[(8, 2, 2), (5,)], beta=2.0,
                             loss_weight=0.5))
    assert isinstance(loss, DKDLoss) and loss.loss_name == 'loss_dkd'
    s = torch.randn(3, 5, requires_grad=True)
    t = torch.randn(3, 5, requires_grad=True)
    target = torch.tensor([1, 4, 0])
    out = loss([t], [torch.randn(3, 8, 2, 2), s], _samples(target))
    assert out.item() == pytest.approx(
        0.5 * slow_dkd(s.detach(), t.detach(), target, 1.0, 2.0, 4.0),
        rel=1e-5)
    out.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None


def test_errors_name_the_key():
    with pytest.raises(ValueError, match=r"distills logits.*'head.fc'"):
        DKDLoss([(5, 2, 2)], [(5,)])
    with pytest.raises(ValueError, match='`temperature` > 0'):
        DKDLoss([(5,)], [(5,)], temperature=0)
    loss = DKDLoss([(5,)], [(5,)])
    mixed = [DataSample().set_gt_score(torch.full((5,), 0.2))]
    with pytest.raises(ValueError, match='one hard label.*Mixup'):
        loss([torch.randn(1, 5)], [torch.randn(1, 5)], mixed)
    with pytest.raises(ValueError, match='data_samples.*got None'):
        loss([torch.randn(1, 5)], [torch.randn(1, 5)], None)
