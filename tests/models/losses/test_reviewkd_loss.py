import pytest
import torch
import torch.nn.functional as F

from afd_mm.models.losses.reviewkd_loss import ReviewKDLoss, hcl_loss
from afd_mm.registry import MODELS


def slow_hcl(fs, ft):
    """Loop version of Eq. 6: squared errors summed cell by cell."""
    def mse(a, b):
        total, count = 0.0, 0
        for idx in torch.cartesian_prod(*[torch.arange(n) for n in a.shape]):
            idx = tuple(idx.tolist())
            total += (float(a[idx]) - float(b[idx]))**2
            count += 1
        return total / count

    def pool(x, size):  # average over equal cells (sizes divide here)
        b, c, h, w = x.shape
        out = torch.zeros(b, c, size, size, dtype=x.dtype)
        ch, cw = h // size, w // size
        for i in range(size):
            for j in range(size):
                out[:, :, i, j] = x[:, :, i * ch:(i + 1) * ch,
                                    j * cw:(j + 1) * cw].mean((2, 3))
        return out

    loss, weight, total = mse(fs, ft), 1.0, 1.0
    for size in (4, 2, 1):
        if size < fs.shape[2]:
            weight /= 2
            loss += weight * mse(pool(fs, size), pool(ft, size))
            total += weight
    return loss / total


def test_hcl_matches_loop_version():
    torch.manual_seed(0)
    for hw in (8, 4, 2, 1):
        fs, ft = torch.randn(2, 3, hw, hw), torch.randn(2, 3, hw, hw)
        assert hcl_loss(fs, ft).item() == pytest.approx(slow_hcl(fs, ft),
                                                        rel=1e-5)


def test_review_path_by_hand():
    """The fused maps equal a level-by-level recomputation with the ABFs."""
    torch.manual_seed(0)
    t_shapes = [(6, 8, 8), (10, 4, 4), (10,)]
    s_shapes = [(4, 8, 8), (8, 4, 4), (8,)]
    loss = MODELS.build(dict(type='afd_mm.ReviewKDLoss',
                             teacher_shapes=t_shapes,
                             student_shapes=s_shapes)).eval()
    assert isinstance(loss, ReviewKDLoss)
    s = [torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4), torch.randn(2, 8)]
    t = [torch.randn(2, 6, 8, 8), torch.randn(2, 10, 4, 4),
         torch.randn(2, 10)]
    abf = loss.abfs
    assert [a.att is None for a in abf] == [False, False, True]
    assert abf[0].reduce[0].out_channels == 8  # mid = deepest student C
    # deepest: no fusion
    x2 = abf[2].reduce(s[2][:, :, None, None])
    y2 = abf[2].out(x2)
    # level 1: fuse with x2 upsampled to 4x4
    x1 = abf[1].reduce(s[1])
    up = F.interpolate(x2, size=(4, 4), mode='nearest')
    a = abf[1].att(torch.cat([x1, up], 1))
    x1 = x1 * a[:, :1] + up * a[:, 1:]
    y1 = abf[1].out(x1)
    x0 = abf[0].reduce(s[0])
    up = F.interpolate(x1, size=(8, 8), mode='nearest')
    a = abf[0].att(torch.cat([x0, up], 1))
    y0 = abf[0].out(x0 * a[:, :1] + up * a[:, 1:])
    fused = loss.review(s)
    for got, want in zip(fused, (y0, y1, y2)):
        assert torch.allclose(got, want, atol=1e-6)
    expected = (slow_hcl(y0, t[0]) + slow_hcl(y1, t[1])
                + slow_hcl(y2, t[2][:, :, None, None]))
    assert loss(t, s).item() == pytest.approx(expected, rel=1e-4)


def test_gradients_reach_student_and_abfs_not_teacher():
    loss = ReviewKDLoss([(6, 4, 4), (6,)], [(3, 4, 4), (5,)],
                        loss_weight=2.0)
    s = [torch.randn(2, 3, 4, 4, requires_grad=True),
         torch.randn(2, 5, requires_grad=True)]
    t = [torch.randn(2, 6, 4, 4, requires_grad=True),
         torch.randn(2, 6, requires_grad=True)]
    loss(t, s).backward()
    assert all(x.grad.abs().sum() > 0 for x in s)
    assert all(x.grad is None for x in t)
    assert all(p.grad is not None for p in loss.parameters())


def test_teacher_size_differs_from_student_size():
    loss = ReviewKDLoss([(6, 8, 8)], [(3, 4, 4)])
    out = loss.review([torch.randn(2, 3, 4, 4)])
    assert out[0].shape == (2, 6, 8, 8)


def test_errors():
    with pytest.raises(ValueError, match='equal, non-zero counts'):
        ReviewKDLoss([(6, 4, 4)], [(3, 4, 4), (3,)])
    with pytest.raises(ValueError, match="student candidate 0 has shape "
                       r"\(3, 4\).*student_recorder"):
        ReviewKDLoss([(6, 4, 4)], [(3, 4)])
