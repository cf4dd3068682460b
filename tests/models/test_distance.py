"""Tests of afd_mm.models.distance: descriptors, values and distances."""
import math

import pytest
import torch

from afd_mm.models import distance as distance_mod
from afd_mm.models.distance import (
    distance_matrix,
    global_descriptor,
    map_descriptors,
    spatial_descriptor,
    student_values,
    teacher_values,
    value_distance,
)


def test_global_descriptor_map_mean_and_vector_passthrough():
    h = torch.arange(8.).view(1, 2, 2, 2)
    assert torch.equal(global_descriptor(h), torch.tensor([[1.5, 5.5]]))
    vec = torch.randn(3, 5)
    assert global_descriptor(vec) is vec


def test_global_descriptor_rejects_other_ranks():
    with pytest.raises(ValueError, match=r'\(B, C, H, W\) map or a \(B, C\) '
                       r'vector, got a tensor of shape \(2, 3, 4\)'):
        global_descriptor(torch.zeros(2, 3, 4))


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
    u = teacher_values(torch.tensor([[[3., 0.], [0., 4.]]]))
    assert torch.allclose(u, torch.tensor([[0.6, 0., 0., 0.8]]))


def test_student_values_down_sample_by_averaging():
    v = torch.arange(16.).view(1, 4, 4)
    w = student_values([v], (2, 2))
    means = torch.tensor([2.5, 4.5, 10.5, 12.5])
    assert w.shape == (1, 1, 4)
    assert torch.allclose(w[0, 0], means / means.norm())


def test_student_values_up_sample_by_replication():
    v = torch.tensor([[[1., 2.], [3., 4.]]])
    w = student_values([v], (4, 4))
    up = torch.tensor([[1., 1., 2., 2.], [1., 1., 2., 2.],
                       [3., 3., 4., 4.], [3., 3., 4., 4.]]).flatten()
    assert torch.allclose(w[0, 0], up / up.norm())


def test_student_values_stack_mixed_sizes_in_order():
    v_s = [torch.rand(2, 8, 8), torch.rand(2, 4, 4), torch.rand(2, 2, 2)]
    w = student_values(v_s, (4, 4))
    assert w.shape == (2, 3, 16)
    assert torch.allclose(w.norm(dim=2), torch.ones(2, 3))
    # the 4 x 4 student at the teacher's own size is only normalised
    assert torch.allclose(w[:, 1], teacher_values(v_s[1]))


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

    assert torch.allclose(student_values(v_s, size), reference(*v_s))
    grad = torch.randn(2, 5, 36, dtype=torch.float64)
    ours = torch.autograd.grad(student_values(v_s, size), v_s, grad)
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
    u = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    w = torch.tensor([[[0.8, 0.6], [0.6, 0.8]]], dtype=torch.float64)
    d = value_distance(w, u, distance)
    assert d.shape == (1, 2)
    assert d[0, 0].item() == pytest.approx(expected)
    assert d[0, 1].item() == pytest.approx(0., abs=1e-12)


def test_value_distance_default_is_l2():
    w, u = torch.rand(2, 3, 5), torch.rand(2, 5)
    assert torch.equal(value_distance(w, u), value_distance(w, u, 'l2'))


def test_value_distance_kl_finite_on_all_zero_maps():
    w = torch.zeros(1, 1, 4, requires_grad=True)
    d = value_distance(w, torch.zeros(1, 4), 'kl')
    d.sum().backward()
    assert d.item() == 0.
    assert torch.isfinite(w.grad).all()


def test_value_distance_unknown_message():
    with pytest.raises(ValueError, match=r"distance='l3' is not supported; "
                       r"choose one of \('l2', 'l1', 'kl', 'cosine'\) "
                       r'\(the `distance` key of AFDLoss\)'):
        value_distance(torch.rand(1, 1, 2), torch.rand(1, 2), 'l3')


def test_distance_matrix_shape_and_pairs():
    teacher = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    student = [torch.randn(2, 3, 8, 8), torch.randn(2, 5, 2, 2)]
    d = distance_matrix(teacher, student, 'l1', 'a1')
    assert d.shape == (2, 2, 2)
    v_s = [spatial_descriptor(h, 'a1') for h in student]
    for t, h_t in enumerate(teacher):
        v_t = spatial_descriptor(h_t, 'a1')
        w = student_values(v_s, tuple(v_t.shape[-2:]))
        expected = value_distance(w, teacher_values(v_t), 'l1')
        assert torch.allclose(d[:, t], expected)


def test_distance_matrix_student_values_once_per_teacher_size(monkeypatch):
    sizes = []

    def counting(v_s, size):
        sizes.append(size)
        return student_values(v_s, size)

    monkeypatch.setattr(distance_mod, 'student_values', counting)
    teacher = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 4, 4),
               torch.randn(2, 6, 8, 8), torch.randn(2, 6, 4, 4)]
    student = [torch.randn(2, 3, 8, 8), torch.randn(2, 5, 2, 2)]
    d = distance_matrix(teacher, student)
    assert d.shape == (2, 4, 2)
    assert sorted(sizes) == [(4, 4), (8, 8)]


@pytest.mark.parametrize('pooling', ['a2', 'a1', 'max'])
@pytest.mark.parametrize('distance', ['l2', 'l1', 'kl', 'cosine'])
def test_distance_matrix_zero_for_replicated_student(distance, pooling):
    """A teacher map that replicates the student's 2 x 2 blocks: D = 0."""
    h_s = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    h_t = h_s.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    d = distance_matrix([h_t], [h_s], distance, pooling)
    assert d.shape == (2, 1, 1)
    assert torch.allclose(d, torch.zeros_like(d), atol=1e-12)


@pytest.mark.parametrize('pooling', ['a2', 'a1', 'max'])
def test_map_descriptors_equal_the_two_descriptors(pooling):
    """One pass, chunked over the batch on CPU (6 samples of 16 x 32 x 32:
    chunks of 4 and 2), on a channels-last view; values and gradients."""
    torch.manual_seed(0)
    h = torch.randn(6, 32, 32, 16, dtype=torch.float64).permute(0, 3, 1, 2)
    expected = (global_descriptor(h), spatial_descriptor(h, pooling))
    with torch.no_grad():  # e.g. the teacher's maps
        for ours, ref in zip(map_descriptors(h, pooling), expected):
            assert torch.allclose(ours, ref)
    h = h.detach().requires_grad_()
    weights = [torch.randn_like(x) for x in expected]
    ours = map_descriptors(h, pooling)
    assert all(torch.allclose(a, b) for a, b in zip(ours, expected))
    grad = torch.autograd.grad(
        sum((x * w).sum() for x, w in zip(ours, weights)), h)[0]
    ref = torch.autograd.grad(
        sum((x * w).sum() for x, w in zip(
            (global_descriptor(h), spatial_descriptor(h, pooling)),
            weights)), h)[0]
    assert torch.allclose(grad, ref)


def _linked_case(t_sizes, s_sizes, seed=0, zero=False):
    """Teacher groups, student maps and alpha, float64."""
    gen = torch.Generator().manual_seed(seed)
    v_t = [torch.rand(4, *s, generator=gen, dtype=torch.float64)
           for s in t_sizes]
    v_s = [torch.rand(4, *s, generator=gen, dtype=torch.float64)
           for s in s_sizes]
    if zero:  # all-zero maps: the normalisation's clamped branch
        v_t[0][1] = 0
        v_s[0][0] = 0
        v_s[-1][2] = 0
    alpha = torch.rand(4, len(t_sizes), len(s_sizes), generator=gen,
                       dtype=torch.float64).softmax(dim=2)
    return distance_mod.grouped_teacher_values(v_t), v_s, alpha


def _loss_and_grads(fn, groups, v_s, alpha):
    alpha = alpha.clone().requires_grad_()
    v_s = [v.clone().requires_grad_() for v in v_s]
    loss = fn(groups, v_s, alpha)
    loss.backward()
    return [loss.detach(), alpha.grad] + [v.grad for v in v_s]


@pytest.mark.parametrize('distance', ['l2', 'cosine', 'l1', 'kl'])
@pytest.mark.parametrize('t_sizes, s_sizes, zero', [
    # every pair kind: equal, block means, replication, in mixed order
    ([(8, 8), (4, 4), (8, 8), (2, 2)], [(4, 4), (8, 8), (2, 2)], False),
    ([(8, 8), (4, 4), (8, 8), (2, 2)], [(4, 4), (8, 8), (2, 2)], True),
    ([(8, 6), (4, 3)], [(2, 3), (8, 6), (16, 12)], False),  # kh != kw
    ([(7, 7), (14, 14)], [(7, 7), (28, 28)], False),
    ([(7, 7), (8, 8)], [(4, 4), (8, 8)], False),  # 7 vs 4: adaptive bins
])
def test_linked_distance_equals_weighted_distance_matrix(
        distance, t_sizes, s_sizes, zero):
    groups, v_s, alpha = _linked_case(t_sizes, s_sizes, zero=zero)

    def reference(groups, v_s, alpha):
        dist = distance_mod.grouped_distance_matrix(groups, v_s, distance)
        return (alpha * dist).sum(dim=2).mean(dim=0).sum()

    def linked(groups, v_s, alpha):
        return distance_mod.linked_distance(groups, v_s, alpha, distance)

    expected = _loss_and_grads(reference, groups, v_s, alpha)
    got = _loss_and_grads(linked, groups, v_s, alpha)
    for e, g in zip(expected, got):
        # zero maps get gradients ~1e12 (division by the 1e-12 clamp)
        scale = max(1.0, float(e.abs().max()))
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10 * scale)


def test_linked_distance_keeps_no_teacher_or_resized_values():
    """The backward holds D and one map per student, nothing of size
    (B, S, P) or (B, T, P): the point of computing it this way."""
    t_sizes = [(16, 16)] * 4 + [(8, 8)] * 4
    s_sizes = [(16, 16), (8, 8), (4, 4)]
    groups, v_s, alpha = _linked_case(t_sizes, s_sizes)
    v_s = [v.requires_grad_() for v in v_s]
    alpha.requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t.numel()) or t, lambda t: t):
        distance_mod.linked_distance(groups, v_s, alpha)
    batch = 4
    largest_student = max(batch * h * w for h, w in s_sizes)
    assert saved and max(saved) <= largest_student
    assert sum(saved) <= alpha.numel() + sum(v.numel() for v in v_s)


def test_linked_distance_without_grad_matches():
    groups, v_s, alpha = _linked_case([(8, 8), (4, 4)], [(8, 8), (2, 2)])
    with torch.no_grad():
        got = distance_mod.linked_distance(groups, v_s, alpha)
    dist = distance_mod.grouped_distance_matrix(groups, v_s)
    expected = (alpha * dist).sum(dim=2).mean(dim=0).sum()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)


def test_block_means_equal_avg_pool2d():
    x = torch.rand(3, 2, 8 * 12, dtype=torch.float64)
    for blocks in [(2, 2), (4, 4), (2, 3), (1, 4), (8, 1)]:
        expected = torch.nn.functional.avg_pool2d(
            x.view(3, 2, 8, 12), blocks).flatten(2)
        got = distance_mod._block_means(x, (8, 12), blocks)
        torch.testing.assert_close(got, expected, rtol=1e-14, atol=0)


def test_teacher_block_sums_only_where_linked_distance_reads_them():
    groups, v_s, alpha = _linked_case([(8, 8), (4, 4)], [(4, 4), (2, 2)])
    sizes = [(4, 4), (2, 2)]
    sums = distance_mod.teacher_block_sums(groups, sizes, 'l2')
    # teacher 8x8 is compared with students 4x4 and 2x2, teacher 4x4 with
    # 2x2: u summed over 2x2, 4x4 and 2x2 blocks
    assert set(sums) == {((8, 8), (4, 4)), ((8, 8), (2, 2)),
                         ((4, 4), (2, 2))}
    u8 = groups[(8, 8)][1].view(4, 1, 8, 8)
    expected = torch.nn.functional.avg_pool2d(u8, 4) * 16
    torch.testing.assert_close(sums[(8, 8), (2, 2)],
                               expected.flatten(2), rtol=1e-12, atol=0)
    assert distance_mod.teacher_block_sums(groups, sizes, 'l1') == {}
    assert distance_mod.teacher_block_sums(groups, [(3, 3)], 'l2') == {}
    # given or formed on the fly: the same loss
    with_sums = distance_mod.linked_distance(groups, v_s, alpha, 'l2', sums)
    without = distance_mod.linked_distance(groups, v_s, alpha, 'l2')
    torch.testing.assert_close(with_sums, without, rtol=1e-14, atol=0)
