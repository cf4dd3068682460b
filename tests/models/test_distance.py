"""Tests of afd_mm.models.distance: descriptors, values and distances."""
import math

import pytest
import torch

from afd_mm.models import distance as distance_mod
from afd_mm.models.distance import (
    Descriptors,
    distance_matrix,
    global_descriptor,
    spatial_descriptor,
    stack_by_size,
    student_values,
    teacher_values,
    value_distance,
)


def test_global_descriptor_map_mean():
    h = torch.arange(8.).view(1, 2, 2, 2)
    assert torch.equal(global_descriptor(h), torch.tensor([[1.5, 5.5]]))


@pytest.mark.parametrize('pooling', ['a2', 'a1', 'max'])
def test_descriptors_transform_keeps_g_and_v(pooling):
    h = torch.randn(2, 3, 4, 4)
    g, v = Descriptors(pooling)(h)
    assert torch.equal(g, global_descriptor(h))
    assert torch.equal(v, spatial_descriptor(h, pooling))
    assert repr(Descriptors(pooling)) == f'Descriptors(pooling={pooling!r})'


def test_descriptors_transform_messages():
    with pytest.raises(ValueError, match=r"pooling='a3' is not supported"):
        Descriptors('a3')
    with pytest.raises(ValueError, match=r'AFD compares feature maps '
                       r'\(B, C, H, W\) but a candidate output has shape '
                       r"\(2, 3\); change the patterns of the distiller's "
                       r'recorders'):
        Descriptors()(torch.zeros(2, 3))


@pytest.mark.parametrize('pooling, expected', [
    ('a2', [[5., 10.]]),  # ((1 + 9) / 2, (4 + 16) / 2)
    ('a1', [[2., 3.]]),  # ((1 + 3) / 2, (2 + 4) / 2)
    ('max', [[3., 4.]]),
])
def test_spatial_descriptor_poolings(pooling, expected):
    # one sample, C = 2 channels over a 1 x 2 map: [1, -2] and [3, 4]
    h = torch.tensor([[[[1., -2.]], [[3., 4.]]]])
    v = spatial_descriptor(h, pooling)
    assert v.shape == (1, 1, 2)
    assert torch.allclose(v, torch.tensor([expected]))


def test_spatial_descriptor_default_is_a2():
    h = torch.randn(2, 3, 4, 4)
    assert torch.equal(spatial_descriptor(h), spatial_descriptor(h, 'a2'))


def test_spatial_descriptor_unknown_pooling_message():
    with pytest.raises(ValueError, match=r"pooling='a3' is not supported; "
                       r"choose one of \('a2', 'a1', 'max'\) \(the "
                       r'`pooling` key of AFDLoss\)'):
        spatial_descriptor(torch.zeros(1, 1, 2, 2), 'a3')


def test_teacher_values_flatten_and_l2_normalise():
    u = teacher_values(torch.tensor([[[[3., 0.], [0., 4.]],
                                      [[0., 0.], [0., 0.]]]]))
    assert u.shape == (1, 2, 4)
    assert torch.allclose(u[0, 0], torch.tensor([0.6, 0., 0., 0.8]))
    assert torch.equal(u[0, 1], torch.zeros(4))  # a zero map stays zero


def test_student_values_down_sample_by_averaging():
    v = torch.arange(16.).view(1, 4, 4)
    w = student_values([v[:, None]], (2, 2))
    means = torch.tensor([2.5, 4.5, 10.5, 12.5])
    assert w.shape == (1, 1, 4)
    assert torch.allclose(w[0, 0], means / means.norm())


def test_student_values_up_sample_by_replication():
    v = torch.tensor([[[1., 2.], [3., 4.]]])
    w = student_values([v[:, None]], (4, 4))
    up = torch.tensor([[1., 1., 2., 2.], [1., 1., 2., 2.],
                       [3., 3., 4., 4.], [3., 3., 4., 4.]]).flatten()
    assert torch.allclose(w[0, 0], up / up.norm())


def test_stack_by_size_keeps_order():
    v_s = [torch.rand(2, 4, 4), torch.rand(2, 4, 4), torch.rand(2, 2, 2),
           torch.rand(2, 4, 4)]
    stacks = stack_by_size(v_s)
    assert [tuple(x.shape) for x in stacks] == [(2, 2, 4, 4), (2, 1, 2, 2),
                                                (2, 1, 4, 4)]
    assert torch.equal(stacks[2][:, 0], v_s[3])


def test_student_values_stack_mixed_sizes_in_order():
    v_s = [torch.rand(2, 8, 8), torch.rand(2, 4, 4), torch.rand(2, 2, 2)]
    w = student_values(stack_by_size(v_s), (4, 4))
    assert w.shape == (2, 3, 16)
    assert torch.allclose(w.norm(dim=2), torch.ones(2, 3))
    # the 4 x 4 student at the teacher's own size is only normalised
    assert torch.allclose(w[:, 1], teacher_values(v_s[1][:, None])[:, 0])


def test_student_values_match_pooling_and_normalise_with_gradients():
    """Values and gradients of adaptive_avg_pool2d + F.normalize, for
    equal, block-mean, replicated and overlapping-bin sizes, and a zero
    map (its norm is clamped)."""
    torch.manual_seed(0)
    v_s = [torch.rand(2, *hw, dtype=torch.float64, requires_grad=True)
           for hw in [(6, 6), (12, 6), (3, 3), (4, 5), (2, 2)]]
    with torch.no_grad():
        v_s[4].zero_()
    size = (6, 6)

    def reference(*maps):
        pooled = [torch.nn.functional.adaptive_avg_pool2d(v[:, None], size)
                  .flatten(1) for v in maps]
        return torch.nn.functional.normalize(torch.stack(pooled, 1), dim=2)

    assert torch.allclose(student_values(stack_by_size(v_s), size),
                          reference(*v_s))
    grad = torch.randn(2, 5, 36, dtype=torch.float64)
    ours = torch.autograd.grad(student_values(stack_by_size(v_s), size),
                               v_s, grad)
    theirs = torch.autograd.grad(reference(*v_s), v_s, grad)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b)


# u and w below: unit vectors; p_u = (3, 4) / 7 and p_w = (4, 3) / 7
@pytest.mark.parametrize('distance, expected', [
    ('l2', 0.04),  # ((0.2) ** 2 + (0.2) ** 2) / 2
    ('l1', 0.2),  # (0.2 + 0.2) / 2
    ('cosine', 0.04),  # 1 - (0.48 + 0.48)
    ('kl', math.log(4 / 3) / 7),  # 3/7 log(3/4) + 4/7 log(4/3)
])
def test_value_distance_hand_values(distance, expected):
    u = torch.tensor([[[0.6, 0.8]]], dtype=torch.float64)
    w = torch.tensor([[[0.8, 0.6], [0.6, 0.8]]], dtype=torch.float64)
    d = value_distance(u, w, distance)
    assert d.shape == (1, 1, 2)
    assert d[0, 0, 0].item() == pytest.approx(expected)
    assert d[0, 0, 1].item() == pytest.approx(0., abs=1e-12)


def test_value_distance_default_is_l2():
    u, w = torch.rand(2, 1, 5), torch.rand(2, 3, 5)
    assert torch.equal(value_distance(u, w), value_distance(u, w, 'l2'))


def test_value_distance_kl_finite_on_all_zero_maps():
    w = torch.zeros(1, 1, 4, requires_grad=True)
    d = value_distance(torch.zeros(1, 1, 4), w, 'kl')
    d.sum().backward()
    assert d.item() == 0.
    assert torch.isfinite(w.grad).all()


def test_value_distance_unknown_message():
    with pytest.raises(ValueError, match=r"distance='l3' is not supported; "
                       r"choose one of \('l2', 'l1', 'kl', 'cosine'\) "
                       r'\(the `distance` key of AFDLoss\)'):
        value_distance(torch.rand(1, 1, 2), torch.rand(1, 1, 2), 'l3')


def _loop_distance(w, u, distance):
    """D of one pair of unit vectors, from the spec's formulas."""
    if distance == 'l2':
        return ((w - u) ** 2).mean()
    if distance == 'l1':
        return (w - u).abs().mean()
    if distance == 'cosine':
        return 1 - w @ u
    p_u, p_w = u / u.sum(), w / w.sum()
    return (p_u * torch.log(p_u / p_w)).sum()


@pytest.mark.parametrize('distance', ['l2', 'l1', 'kl', 'cosine'])
def test_value_distance_against_loop(distance):
    u = torch.nn.functional.normalize(torch.rand(3, 2, 7, dtype=torch.float64),
                                      dim=-1)
    w = torch.nn.functional.normalize(torch.rand(3, 4, 7, dtype=torch.float64),
                                      dim=-1)
    d = value_distance(u, w, distance)
    for b in range(3):
        for t in range(2):
            for s in range(4):
                expected = _loop_distance(w[b, s], u[b, t], distance)
                assert d[b, t, s].item() == pytest.approx(expected.item())


@pytest.mark.parametrize('target', [1e-3, 1e-5, 1e-7])
def test_l2_distance_accurate_in_float32_when_small(target):
    """D within 1e-3 relative error down to D = 1e-7 in float32: the
    squared differences, not |w|^2 + |u|^2 - 2 <w, u>."""
    gen = torch.Generator().manual_seed(0)
    positions = 64
    u = torch.nn.functional.normalize(
        torch.rand(8, 1, positions, generator=gen, dtype=torch.float64),
        dim=-1)
    step = torch.randn(8, 1, positions, generator=gen, dtype=torch.float64)
    w = torch.nn.functional.normalize(
        u + step * (target * positions) ** 0.5 / step.norm(dim=-1,
                                                           keepdim=True),
        dim=-1)
    exact = ((w - u) ** 2).mean(dim=-1, keepdim=True)  # float64
    got = value_distance(u.float(), w.float(), 'l2').double()
    # the inputs' own rounding to float32 moves D by far less than 1e-3
    assert ((got - exact).abs() / exact).max() < 1e-3


def test_distance_matrix_against_loop_mixed_sizes():
    """Teachers of three sizes in mixed order, students smaller, equal,
    larger and at a non-integer ratio (adaptive bins)."""
    gen = torch.Generator().manual_seed(1)
    t_sizes = [(8, 8), (4, 4), (8, 8), (3, 3)]
    s_sizes = [(8, 8), (8, 8), (4, 4), (2, 2)]
    v_t = [torch.rand(2, *hw, generator=gen, dtype=torch.float64)
           for hw in t_sizes]
    v_s = [torch.rand(2, *hw, generator=gen, dtype=torch.float64)
           for hw in s_sizes]
    for distance in ['l2', 'l1', 'kl', 'cosine']:
        d = distance_matrix(v_t, v_s, distance)
        assert d.shape == (2, 4, 4)
        for t, vt in enumerate(v_t):
            u = vt.flatten(1) / vt.flatten(1).norm(dim=1, keepdim=True)
            for s, vs in enumerate(v_s):
                pooled = torch.nn.functional.adaptive_avg_pool2d(
                    vs, t_sizes[t]).flatten(1)
                w = pooled / pooled.norm(dim=1, keepdim=True)
                for b in range(2):
                    expected = _loop_distance(w[b], u[b], distance)
                    assert d[b, t, s].item() == pytest.approx(
                        expected.item(), abs=1e-12)


def test_distance_matrix_student_values_once_per_teacher_size(monkeypatch):
    sizes = []

    def counting(stacks, size):
        sizes.append(size)
        return student_values(stacks, size)

    monkeypatch.setattr(distance_mod, 'student_values', counting)
    v_t = [torch.rand(2, *hw) for hw in [(8, 8), (4, 4), (8, 8), (4, 4)]]
    v_s = [torch.rand(2, 8, 8), torch.rand(2, 2, 2)]
    d = distance_matrix(v_t, v_s)
    assert d.shape == (2, 4, 2)
    assert sorted(sizes) == [(4, 4), (8, 8)]


@pytest.mark.parametrize('pooling', ['a2', 'a1', 'max'])
@pytest.mark.parametrize('distance', ['l2', 'l1', 'kl', 'cosine'])
def test_distance_matrix_zero_for_replicated_student(distance, pooling):
    """A teacher map that replicates the student's 2 x 2 blocks: D = 0."""
    h_s = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    h_t = h_s.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    d = distance_matrix([spatial_descriptor(h_t, pooling)],
                        [spatial_descriptor(h_s, pooling)], distance)
    assert d.shape == (2, 1, 1)
    assert torch.allclose(d, torch.zeros_like(d), atol=1e-12)


def test_distance_matrix_gradients_are_finite_for_zero_and_equal_maps():
    """All-zero maps and a student equal to its teacher (D = 0, where the
    Euclidean distance has no derivative) give finite gradients."""
    v = torch.rand(2, 4, 4, dtype=torch.float64)
    v_s = [v.clone().requires_grad_(), torch.zeros(2, 2, 2,
                                                   dtype=torch.float64,
                                                   requires_grad=True)]
    for distance in ['l2', 'l1', 'kl', 'cosine']:
        d = distance_matrix([v, torch.zeros(2, 4, 4, dtype=torch.float64)],
                            v_s, distance)
        grads = torch.autograd.grad(d.sum(), v_s)
        assert all(torch.isfinite(g).all() for g in grads)
