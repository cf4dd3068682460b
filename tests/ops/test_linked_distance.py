"""The C kernel of L_AFD's distances (afd_mm/ops/linked_distance)."""
import pytest
import torch

from afd_mm.models import distance as distance_mod
from afd_mm.ops import kernel_linked_distance, linked_distance


def _case(t_sizes, s_sizes, zero=False, batch=5, seed=0):
    """Teacher groups, student maps and alpha, float32."""
    gen = torch.Generator().manual_seed(seed)
    v_t = [torch.rand(batch, *s, generator=gen) for s in t_sizes]
    v_s = [torch.rand(batch, *s, generator=gen) for s in s_sizes]
    if zero:  # all-zero maps: the normalisation's clamped branch
        v_t[0][1] = 0
        v_s[0][0] = 0
        v_s[-1][2] = 0
    alpha = torch.rand(batch, len(t_sizes), len(s_sizes),
                       generator=gen).softmax(dim=2)
    return v_t, v_s, alpha


def _loss_and_grads(v_t, v_s, alpha, distance, linked):
    v_t = [v.double() for v in v_t] if not linked else v_t
    groups = distance_mod.grouped_teacher_values(v_t)
    alpha = alpha.clone().to(v_t[0].dtype).requires_grad_()
    v_s = [v.clone().to(v_t[0].dtype).requires_grad_() for v in v_s]
    if linked:
        loss = distance_mod.linked_distance(groups, v_s, alpha, distance)
    else:
        dist = distance_mod.grouped_distance_matrix(groups, v_s, distance)
        loss = (alpha * dist).sum(dim=2).mean(dim=0).sum()
    loss.backward()
    return [loss.detach(), alpha.grad] + [v.grad for v in v_s]


def test_kernel_is_built():
    """Built by `pip install -e .` with the descriptors' kernel."""
    assert linked_distance._KERNEL is not None, (
        'afd_mm/ops/_kernels was not built (the install found no C '
        'compiler?): install gcc and run `pip install -e .` again')


@pytest.mark.parametrize('distance', ['l2', 'cosine'])
@pytest.mark.parametrize('t_sizes, s_sizes, zero', [
    # every pair kind: equal, block means, replication, in mixed order
    ([(8, 8), (4, 4), (8, 8), (2, 2)], [(4, 4), (8, 8), (2, 2)], False),
    ([(8, 8), (4, 4), (8, 8), (2, 2)], [(4, 4), (8, 8), (2, 2)], True),
    ([(8, 6), (4, 3)], [(2, 3), (8, 6), (16, 12)], False),  # kh != kw
    ([(32, 32)] * 3 + [(16, 16)] * 3 + [(8, 8)] * 3,
     [(32, 32), (16, 16), (8, 8)], False),  # R56 -> R20's sizes
    ([(1, 1)], [(1, 1), (3, 5)], False),
])
def test_kernel_matches_the_formula(distance, t_sizes, s_sizes, zero):
    """Loss and gradients (alpha and every student map) against the
    distance matrix's formula in float64."""
    v_t, v_s, alpha = _case(t_sizes, s_sizes, zero)
    groups = distance_mod.grouped_teacher_values(v_t)
    assert kernel_linked_distance(
        groups, distance_mod._group_by_size(v_s), v_s, alpha,
        distance == 'cosine', True) is not None
    expected = _loss_and_grads(v_t, v_s, alpha, distance, linked=False)
    got = _loss_and_grads(v_t, v_s, alpha, distance, linked=True)
    for e, g in zip(expected, got):
        assert g.dtype == torch.float32
        # zero maps get gradients ~1e12 (division by the 1e-12 clamp)
        scale = max(1.0, float(e.abs().max()))
        torch.testing.assert_close(g.double(), e, rtol=2e-5,
                                   atol=2e-6 * scale)


def test_kernel_and_pytorch_paths_agree_without_grad(monkeypatch):
    v_t, v_s, alpha = _case([(8, 8), (4, 4)], [(8, 8), (2, 2), (16, 16)])
    groups = distance_mod.grouped_teacher_values(v_t)
    with torch.no_grad():
        fused = distance_mod.linked_distance(groups, v_s, alpha)
        monkeypatch.setenv('AFD_MM_KERNELS', '0')
        plain = distance_mod.linked_distance(groups, v_s, alpha)
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('make', [
    lambda v: v.double(),  # dtype
    lambda v: v.transpose(1, 2),  # not contiguous
])
def test_kernel_declines_what_it_does_not_serve(make):
    v_t, v_s, alpha = _case([(4, 4)], [(4, 4), (2, 2)])
    groups = distance_mod.grouped_teacher_values(v_t)
    student_groups = distance_mod._group_by_size(v_s)
    v_s[0] = make(v_s[0])
    assert kernel_linked_distance(groups, student_groups, v_s, alpha,
                                  False, True) is None
    loss = distance_mod.linked_distance(groups, v_s, alpha)  # PyTorch's
    assert torch.isfinite(loss)


def test_kernel_declines_sizes_without_an_integer_ratio():
    """7 vs 4 (adaptive bins) or a ratio up in one dim and down in the
    other: linked_distance never sends them, and the kernel refuses."""
    for t_sizes, s_sizes in [([(7, 7)], [(4, 4)]), ([(4, 8)], [(8, 4)])]:
        v_t, v_s, alpha = _case(t_sizes, s_sizes)
        groups = distance_mod.grouped_teacher_values(v_t)
        assert kernel_linked_distance(
            groups, distance_mod._group_by_size(v_s), v_s, alpha, False,
            True) is None


def test_kernel_is_switched_off_by_the_environment(monkeypatch):
    v_t, v_s, alpha = _case([(4, 4)], [(4, 4)])
    groups = distance_mod.grouped_teacher_values(v_t)
    monkeypatch.setenv('AFD_MM_KERNELS', '0')
    assert not linked_distance.linked_kernel_serves(groups)
    assert kernel_linked_distance(groups, {(4, 4): [0]}, v_s, alpha, False,
                                  True) is None
