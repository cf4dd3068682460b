import math

import pytest
import torch

from afd_mm.models.losses.rkd_loss import (
    RKDLoss,
    angles,
    normalized_distances,
    rkd_angle_loss,
    rkd_distance_loss,
)
from afd_mm.registry import MODELS

SQ3 = math.sqrt(3.0)
EQUILATERAL = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, SQ3 / 2]])
RIGHT = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def smooth_l1(x):
    return 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5


def slow_angle_loss(s, t):
    """Loop over all (i, j, k): smooth L1 of the cosines at vertex i."""
    def cos(e, i, j, k):
        u, v = e[j] - e[i], e[k] - e[i]
        nu, nv = float(u.norm()), float(v.norm())
        return 0.0 if nu == 0 or nv == 0 else float(u @ v) / (nu * nv)
    b = len(s)
    total = sum(smooth_l1(cos(s, i, j, k) - cos(t, i, j, k))
                for i in range(b) for j in range(b) for k in range(b))
    return total / b**3


def slow_distance_loss(s, t):
    """Loop over all (i, j): smooth L1 of the mean-normalised distances."""
    def dists(e):
        d = [[float((e[i] - e[j]).norm()) for j in range(len(e))]
             for i in range(len(e))]
        pos = [v for row in d for v in row if v > 0]
        return [[v / (sum(pos) / len(pos)) for v in row] for row in d]
    ds, dt = dists(s), dists(t)
    b = len(s)
    return sum(smooth_l1(ds[i][j] - dt[i][j])
               for i in range(b) for j in range(b)) / b**2


def test_equilateral_relations():
    dist = normalized_distances(EQUILATERAL * 5)
    assert torch.allclose(dist, 1 - torch.eye(3), atol=1e-5)
    cos = angles(EQUILATERAL)
    for i in range(3):
        for j in range(3):
            for k in range(3):
                want = (0.0 if i in (j, k) else 1.0 if j == k else 0.5)
                assert cos[i, j, k].item() == pytest.approx(want, abs=1e-5)


def test_similar_configurations_give_zero():
    # rotated, scaled, translated, embedded in 3-D: same relations
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
    teacher = torch.cat([EQUILATERAL @ rot * 7 + 2, torch.ones(3, 1)], 1)
    loss = RKDLoss([(3,)], [(2,)])
    assert loss([teacher], [EQUILATERAL], None).item() == pytest.approx(
        0.0, abs=1e-4)


def test_distance_hand_value():
    # right isosceles student vs equilateral teacher: the mean distance is
    # m = (2 + sqrt 2) / 3, so 4 entries differ by 1/m - 1, 2 by sqrt2/m - 1
    m = (2 + math.sqrt(2.0)) / 3
    a, b = 1 / m - 1, math.sqrt(2.0) / m - 1
    expected = (4 * 0.5 * a * a + 2 * 0.5 * b * b) / 9
    out = rkd_distance_loss(RIGHT, EQUILATERAL).item()
    assert out == pytest.approx(expected, rel=1e-5)


def test_matches_loop_versions():
    torch.manual_seed(0)
    s, t = torch.randn(5, 4), torch.randn(5, 6) * 3
    assert rkd_distance_loss(s, t).item() == pytest.approx(
        slow_distance_loss(s, t), rel=1e-5)
    assert rkd_angle_loss(s, t).item() == pytest.approx(
        slow_angle_loss(s, t), rel=1e-5)


def test_weights_and_last_candidate():
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='afd_mm.RKDLoss',
                             teacher_shapes=[(3, 4, 4), (6,)],
                             student_shapes=[(4,)], loss_weight=2.0))
    assert (loss.distance_weight, loss.angle_weight) == (25.0, 50.0)
    assert loss.loss_name == 'loss_rkd'
    s, t = torch.randn(4, 4), torch.randn(4, 6)
    expected = 2.0 * (25 * slow_distance_loss(s, t)
                      + 50 * slow_angle_loss(s, t))
    out = loss([torch.randn(4, 3, 4, 4), t], [s], None)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_maps_are_pooled():
    torch.manual_seed(0)
    loss = RKDLoss([(6, 3, 3)], [(4,)])
    s, t = torch.randn(4, 4), torch.randn(4, 6)
    t_map = t[:, :, None, None].expand(4, 6, 3, 3)
    assert loss([t_map], [s], None).item() == pytest.approx(
        loss([t], [s], None).item(), rel=1e-6)


def test_gradient_reaches_student_not_teacher():
    loss = RKDLoss([(6, 2, 2)], [(4, 2, 2)])
    s = torch.randn(4, 4, 2, 2, requires_grad=True)
    t = torch.randn(4, 6, 2, 2, requires_grad=True)
    loss([t], [s], None).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert torch.isfinite(s.grad).all()
    assert t.grad is None


def test_batch_of_one():
    loss = RKDLoss([(6,)], [(4,)])
    with pytest.raises(ValueError, match=r'at least 2 samples.*drop_last'):
        loss([torch.randn(1, 6)], [torch.randn(1, 4)], None)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"last student candidate.*"
                       r"student_recorder's `patterns`"):
        RKDLoss([(6,)], [(4, 2)])
    with pytest.raises(ValueError, match='at least one teacher'):
        RKDLoss([], [(4,)])
