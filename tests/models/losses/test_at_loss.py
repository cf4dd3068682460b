import math

import pytest
import torch

from afd_mm.models.losses.at_loss import ATLoss, attention_map
from afd_mm.registry import MODELS

T_SHAPES = [(8, 4, 4), (16, 2, 2)]
S_SHAPES = [(4, 4, 4), (8, 2, 2)]


def slow_attention(feat, p):
    """Loop version: per sample, channel mean of |f|^p, then L2-normalise."""
    maps = []
    _, c, h, w = feat.shape
    for f in feat:
        vals = [sum(abs(float(f[k, i, j])) ** p for k in range(c)) / c
                for i in range(h) for j in range(w)]
        norm = math.sqrt(sum(v * v for v in vals))
        maps.append([v / norm for v in vals])
    return maps


def slow_at(t_feats, s_feats, p):
    """Sum over pairs of the mean over samples and positions."""
    total = 0.0
    for t, s in zip(t_feats, s_feats):
        a_t, a_s = slow_attention(t, p), slow_attention(s, p)
        sq = [(x - y) ** 2 for rt, rs in zip(a_t, a_s)
              for x, y in zip(rt, rs)]
        total += sum(sq) / len(sq)
    return total


def test_attention_map_of_known_tensor():
    feat = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]],
                          [[-1.0, 2.0], [0.0, 0.0]]]])  # (1, 2, 2, 2)
    # mean over C of f^2 = [[1, 2], [0, 0]] -> [1, 2, 0, 0] / sqrt(5)
    expected = torch.tensor([[1.0, 2.0, 0.0, 0.0]]) / math.sqrt(5.0)
    assert torch.allclose(attention_map(feat), expected)
    # p = 1 uses |f|: mean = [[1, 1], [0, 0]] -> [1, 1, 0, 0] / sqrt(2)
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0]]) / math.sqrt(2.0)
    assert torch.allclose(attention_map(feat, p=1), expected)


def test_matches_loop_version():
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='afd_mm.ATLoss', teacher_shapes=T_SHAPES,
                             student_shapes=S_SHAPES))
    assert (loss.loss_weight, loss.p, loss.loss_name) == (
        1000.0, 2.0, 'loss_at')
    t = [torch.randn(3, *s) for s in T_SHAPES]
    s = [torch.randn(3, *s) for s in S_SHAPES]
    expected = 1000.0 * slow_at(t, s, 2.0)
    assert loss(t, s, None).item() == pytest.approx(expected, rel=1e-5)


def test_scaled_map_gives_zero():
    torch.manual_seed(0)
    loss = ATLoss([(3, 4, 4)], [(3, 4, 4)])
    t = torch.rand(2, 3, 4, 4)
    assert loss([t], [3 * t], None).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_student_not_teacher():
    loss = ATLoss(T_SHAPES, S_SHAPES)
    s = [torch.randn(2, *shape, requires_grad=True) for shape in S_SHAPES]
    t = [torch.randn(2, *shape, requires_grad=True) for shape in T_SHAPES]
    loss(t, s, None).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s)
    assert all(f.grad is None for f in t)
    assert list(loss.parameters()) == []


def test_unequal_counts():
    with pytest.raises(ValueError, match=r'2 teacher and 1 student.*'
                       r'`teacher_recorder.indices` and '
                       r'`student_recorder.indices`'):
        ATLoss(T_SHAPES, S_SHAPES[:1])


@pytest.mark.parametrize('s_shapes', [
    [(4, 4, 4), (8, 4, 4)],
    [(4, 4, 4), (8,)],
])
def test_unequal_spatial_size(s_shapes):
    with pytest.raises(ValueError, match=r'ATLoss pair 1 needs .* same H, W'):
        ATLoss(T_SHAPES, s_shapes)


def test_bad_p():
    with pytest.raises(ValueError, match='`p` > 0'):
        ATLoss(T_SHAPES, S_SHAPES, p=0)
