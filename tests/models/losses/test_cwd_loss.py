"""CWDLoss against a loop-by-loop version of Shu et al.'s formula."""
import math

import pytest
import torch
from mmengine.registry import init_default_scope

from afd_mm.models.losses.cwd_loss import CWDLoss, channel_wise_divergence
from afd_mm.registry import MODELS


def _loop_cwd(t, s, tau):
    """tau^2 / C sum_c sum_i phi_T log(phi_T / phi_S), mean over b."""
    batch, channels = t.shape[:2]
    total = 0.
    for b in range(batch):
        for c in range(channels):
            t_vals = [v / tau for v in t[b, c].flatten().tolist()]
            s_vals = [v / tau for v in s[b, c].flatten().tolist()]
            z_t = sum(math.exp(v) for v in t_vals)
            z_s = sum(math.exp(v) for v in s_vals)
            for tv, sv in zip(t_vals, s_vals):
                p_t, p_s = math.exp(tv) / z_t, math.exp(sv) / z_s
                total += p_t * math.log(p_t / p_s)
    return tau ** 2 * total / channels / batch


@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_matches_loop_reference(tau):
    torch.manual_seed(0)
    t = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    s = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    value = channel_wise_divergence(t, s, tau)
    assert value.item() == pytest.approx(_loop_cwd(t, s, tau), rel=1e-10)
    assert channel_wise_divergence(t, t, tau).item() == pytest.approx(
        0.0, abs=1e-12)


def test_loss_sums_levels_and_aligns_channels():
    init_default_scope('mmpretrain')  # where 'afd_mm.X' types resolve
    torch.manual_seed(0)
    shapes_t = [(4, 8, 8), (4, 4, 4)]
    shapes_s = [(4, 8, 8), (2, 4, 4)]
    loss = MODELS.build(dict(type='afd_mm.CWDLoss', teacher_shapes=shapes_t,
                             student_shapes=shapes_s, tau=2.0,
                             loss_weight=3.0))
    assert isinstance(loss.align[0], torch.nn.Identity)
    assert loss.align[1].in_channels == 2
    teacher = [torch.randn(2, *s) for s in shapes_t]
    student = [torch.randn(2, *s, requires_grad=True) for s in shapes_s]
    value = loss(teacher, student)
    expected = 3.0 * (_loop_cwd(teacher[0], student[0], 2.0) + _loop_cwd(
        teacher[1], loss.align[1](student[1]).detach(), 2.0))
    assert value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert all(s.grad is not None for s in student)
    assert loss.align[1].weight.grad is not None
    # a padded batch of another size: same pairs, any (H, W)
    other = loss([torch.randn(2, 4, 6, 10), torch.randn(2, 4, 3, 5)],
                 [torch.randn(2, 4, 6, 10), torch.randn(2, 2, 3, 5)])
    assert torch.isfinite(other)


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="patterns='neck.fpn_convs"):
        CWDLoss([(4, 8, 8)], [(4, 8, 8), (4, 4, 4)])
    with pytest.raises(ValueError, match='equal stride'):
        CWDLoss([(4, 8, 8)], [(4, 4, 4)])
    with pytest.raises(ValueError, match='must be positive'):
        CWDLoss([(4, 8, 8)], [(4, 8, 8)], tau=0)
    loss = CWDLoss([(4, 8, 8)], [(4, 8, 8)])
    with pytest.raises(ValueError, match='differ in size'):
        loss([torch.randn(1, 4, 8, 8)], [torch.randn(1, 4, 4, 4)])
