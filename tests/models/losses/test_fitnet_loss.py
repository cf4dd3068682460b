import pytest
import torch
import torch.nn as nn

from afd_mm.models.losses.fitnet_loss import FitNetLoss
from afd_mm.registry import MODELS

STAGES_T = [(8, 8, 8), (16, 4, 4), (32, 2, 2)]
STAGES_S = [(4, 8, 8), (8, 4, 4), (16, 2, 2)]


def slow_mse(a, b):
    """Loop version: mean of squared differences over every element."""
    total, count = 0.0, 0
    for x, y in zip(a.flatten().tolist(), b.flatten().tolist()):
        total += (x - y) ** 2
        count += 1
    return total / count


@pytest.mark.parametrize('num,index', [(3, 1), (4, 1), (9, 4), (1, 0)])
def test_default_index_is_lower_middle(num, index):
    shapes = [(4, 2, 2)] * num
    loss = FitNetLoss(shapes, shapes)
    assert (loss.teacher_index, loss.student_index) == (index, index)


def test_negative_index_and_defaults():
    loss = MODELS.build(dict(type='afd_mm.FitNetLoss',
                             teacher_shapes=STAGES_T,
                             student_shapes=STAGES_S,
                             teacher_index=-1, student_index=-1))
    assert (loss.teacher_index, loss.student_index) == (2, 2)
    assert loss.loss_weight == 100.0 and loss.loss_name == 'loss_fitnet'
    assert isinstance(loss.pool, nn.Identity)
    assert loss.conv.weight.shape == (32, 16, 1, 1)


def test_hand_value_with_identity_regressor():
    torch.manual_seed(0)
    loss = FitNetLoss(STAGES_T, [(16, 4, 4)] * 3, loss_weight=2.0).eval()
    with torch.no_grad():  # conv = identity; BN in eval: x / sqrt(1 + eps)
        loss.conv.weight.copy_(torch.eye(16)[:, :, None, None])
    s = torch.randn(2, 16, 4, 4)
    t = torch.randn(2, 16, 4, 4)
    expected = 2.0 * slow_mse(s / (1 + loss.bn.eps) ** 0.5, t)
    out = loss([torch.zeros(2, 8, 8, 8), t, torch.zeros(2, 32, 2, 2)],
               [s] * 3, None)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_relu_option():
    loss = FitNetLoss([(2, 1, 1)], [(2, 1, 1)], with_relu=True).eval()
    with torch.no_grad():
        loss.conv.weight.copy_(torch.eye(2)[:, :, None, None])
    s = torch.tensor([[-1.0, 3.0]]).view(1, 2, 1, 1)
    out = loss.regress(s).flatten()
    assert out[0].item() == 0.0 and out[1].item() > 0


@pytest.mark.parametrize('s_size,t_size', [(8, 4), (2, 4)])
def test_pooling_only_when_sizes_differ(s_size, t_size):
    loss = FitNetLoss([(6, t_size, t_size)], [(3, s_size, s_size)])
    assert isinstance(loss.pool, nn.AdaptiveAvgPool2d)
    out = loss.regress(torch.randn(2, 3, s_size, s_size))
    assert out.shape == (2, 6, t_size, t_size)


def test_upsampling_replicates():
    loss = FitNetLoss([(1, 4, 4)], [(1, 2, 2)])
    s = torch.arange(4.0).view(1, 1, 2, 2)
    pooled = loss.pool(s)[0, 0]
    assert torch.equal(pooled[:2, :2], torch.zeros(2, 2))
    assert torch.equal(pooled[2:, 2:], torch.full((2, 2), 3.0))


def test_gradient_reaches_student_and_regressor_not_teacher():
    loss = FitNetLoss(STAGES_T, STAGES_S)
    s = [torch.randn(2, *shape, requires_grad=True) for shape in STAGES_S]
    t = [torch.randn(2, *shape, requires_grad=True) for shape in STAGES_T]
    loss(t, s, None).backward()
    assert s[1].grad is not None and s[1].grad.abs().sum() > 0
    assert s[0].grad is None and s[2].grad is None
    assert all(f.grad is None for f in t)
    for name, param in loss.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize('key', ['teacher_index', 'student_index'])
def test_index_out_of_range(key):
    with pytest.raises(ValueError, match=rf'`{key}=3` is out of range'):
        FitNetLoss(STAGES_T, STAGES_S, **{key: 3})


def test_needs_a_map():
    with pytest.raises(ValueError, match=r'needs a \(C, H, W\) feature map'):
        FitNetLoss([(8, 2, 2), (10,)], STAGES_S, teacher_index=1)
