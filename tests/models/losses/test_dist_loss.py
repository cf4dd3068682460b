import math

import pytest
import torch

from afd_mm.models.losses.dist_loss import DISTLoss, dist_loss
from afd_mm.registry import MODELS


def _softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def _pearson(u, v):
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    num = sum((a - mu) * (b - mv) for a, b in zip(u, v))
    den = math.sqrt(sum((a - mu)**2 for a in u)
                    * sum((b - mv)**2 for b in v))
    return num / den


def slow_dist(s, t, beta, gamma, temperature):
    """Loop version of the paper's Eq. 6-9."""
    ys = [_softmax([float(v) / temperature for v in row]) for row in s]
    yt = [_softmax([float(v) / temperature for v in row]) for row in t]
    n, k = len(ys), len(ys[0])
    inter = 1 - sum(_pearson(ys[i], yt[i]) for i in range(n)) / n
    intra = 1 - sum(_pearson([ys[i][j] for i in range(n)],
                             [yt[i][j] for i in range(n)])
                    for j in range(k)) / k
    return temperature**2 * (beta * inter + gamma * intra)


def test_matches_loop_version():
    torch.manual_seed(0)
    s, t = torch.randn(5, 7) * 2, torch.randn(5, 7) * 3
    for args in ((2.0, 2.0, 4.0), (1.0, 1.0, 1.0), (0.5, 3.0, 2.0)):
        assert dist_loss(s, t, *args).item() == pytest.approx(
            slow_dist(s, t, *args), rel=1e-5)


def test_invariant_to_teacher_scale_and_shift_of_probabilities():
    # a perfectly correlated student gives zero loss
    z = torch.randn(4, 6)
    assert dist_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-5)


def test_module_uses_last_candidate_and_weight():
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='afd_mm.DISTLoss', teacher_shapes=[(5,)],
                             student_shapes=[(5,)], loss_weight=0.5,
                             beta=1.0, gamma=1.0, temperature=1.0))
    assert isinstance(loss, DISTLoss) and loss.loss_name == 'loss_dist'
    s = torch.randn(3, 5, requires_grad=True)
    t = torch.randn(3, 5, requires_grad=True)
    out = loss([t], [s])
    assert out.item() == pytest.approx(
        0.5 * slow_dist(s.detach(), t.detach(), 1.0, 1.0, 1.0), rel=1e-5)
    out.backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_errors():
    with pytest.raises(ValueError, match=r"distills logits.*'head.fc'"):
        DISTLoss([(5,)], [(6,)])
    with pytest.raises(ValueError, match='`temperature` > 0'):
        DISTLoss([(5,)], [(5,)], temperature=-1)
    with pytest.raises(ValueError, match='at least 2 samples.*batch_size'):
        DISTLoss([(5,)], [(5,)])([torch.randn(1, 5)], [torch.randn(1, 5)])
