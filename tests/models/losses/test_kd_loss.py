import math

import pytest
import torch

from afd_mm.models.losses.kd_loss import KDLoss, kd_loss
from afd_mm.registry import MODELS


def slow_kd(s, t, temperature):
    """Loop version from the formula: sum_k p_t (log p_t - log p_s) T^2."""
    total = 0.0
    for b in range(len(s)):
        zs = [float(v) / temperature for v in s[b]]
        zt = [float(v) / temperature for v in t[b]]
        ls = math.log(sum(math.exp(v) for v in zs))
        lt = math.log(sum(math.exp(v) for v in zt))
        for k in range(len(zs)):
            p_t = math.exp(zt[k] - lt)
            total += p_t * ((zt[k] - lt) - (zs[k] - ls))
    return total / len(s) * temperature**2


def test_identical_logits_give_zero():
    z = torch.randn(4, 10)
    assert kd_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_value():
    # T = 2: p_t = softmax([ln 3, 0]) = (3/4, 1/4), p_s = (1/2, 1/2).
    t = torch.tensor([[2 * math.log(3.0), 0.0]])
    s = torch.zeros(1, 2)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kd_loss(s, t, 2.0).item() == pytest.approx(4 * kl, rel=1e-5)


def test_matches_loop_version():
    torch.manual_seed(0)
    s, t = torch.randn(3, 5), torch.randn(3, 5) * 3
    expected = slow_kd(s, t, 4.0)
    assert kd_loss(s, t, 4.0).item() == pytest.approx(expected, rel=1e-5)


def test_module_uses_last_candidate_and_weight():
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='afd_mm.KDLoss',
                             teacher_shapes=[(8, 4, 4), (5,)],
                             student_shapes=[(6,), (5,)]))
    assert isinstance(loss, KDLoss)
    assert (loss.loss_weight, loss.temperature) == (0.9, 4.0)
    assert loss.loss_name == 'loss_kd_logits'
    s, t = torch.randn(3, 5), torch.randn(3, 5)
    out = loss([torch.randn(3, 8, 4, 4), t], [torch.randn(3, 6), s], None)
    assert out.item() == pytest.approx(0.9 * slow_kd(s, t, 4.0), rel=1e-5)


def test_gradient_reaches_student_not_teacher():
    loss = KDLoss([(5,)], [(5,)], temperature=2.0)
    s = torch.randn(3, 5, requires_grad=True)
    t = torch.randn(3, 5, requires_grad=True)
    loss([t], [s], None).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize('temperature', [0.0, -1.0])
def test_bad_temperature(temperature):
    with pytest.raises(ValueError, match='temperature > 0'):
        kd_loss(torch.zeros(1, 2), torch.zeros(1, 2), temperature)
    with pytest.raises(ValueError, match='`temperature` > 0'):
        KDLoss([(2,)], [(2,)], temperature=temperature)


def test_class_mismatch():
    with pytest.raises(ValueError, match=r'same shape.*kd_weight=0'):
        kd_loss(torch.zeros(2, 10), torch.zeros(2, 100))


@pytest.mark.parametrize('t_shapes,s_shapes', [
    ([(5, 4, 4)], [(5,)]),
    ([(5,)], [(6,)]),
])
def test_module_needs_equal_logit_vectors(t_shapes, s_shapes):
    with pytest.raises(ValueError, match=r"distills logits.*'head.fc'"):
        KDLoss(t_shapes, s_shapes)


def test_module_needs_candidates():
    with pytest.raises(ValueError, match='at least one teacher'):
        KDLoss([], [(5,)])


def slow_standardize(row):
    """Z-score of one row, unbiased std, as Sun et al. (CVPR 2024) Eq. 8."""
    row = [float(v) for v in row]
    mean = sum(row) / len(row)
    std = math.sqrt(sum((v - mean)**2 for v in row) / (len(row) - 1))
    return [(v - mean) / (std + 1e-7) for v in row]


def test_logit_standardisation_matches_loop_version():
    torch.manual_seed(0)
    s, t = torch.randn(3, 5) * 4 + 2, torch.randn(3, 5) * 0.5
    zs = torch.tensor([slow_standardize(r) for r in s])
    zt = torch.tensor([slow_standardize(r) for r in t])
    expected = slow_kd(zs, zt, 2.0)
    out = kd_loss(s, t, 2.0, standardize=True)
    assert out.item() == pytest.approx(expected, rel=1e-5)
    # invariant to each row's shift and scale, which plain KD is not
    out_scaled = kd_loss(s * 3 + 1, t * 0.2 - 5, 2.0, standardize=True)
    assert out_scaled.item() == pytest.approx(out.item(), rel=1e-4)
    loss = KDLoss([(5,)], [(5,)], temperature=2.0, standardize=True,
                  loss_weight=1.0)
    assert loss([t], [s]).item() == pytest.approx(expected, rel=1e-5)
