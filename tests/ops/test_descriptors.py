"""The C kernel for g(h) and v(h) (afd_mm/ops): values, dispatch, threads."""
import pytest
import torch

from afd_mm.models.distance import (
    _chunked_descriptors,
    global_descriptor,
    map_descriptors,
    spatial_descriptor,
)
from afd_mm.ops import KERNEL_ENV, descriptors, kernel_available
from afd_mm.ops import kernel_descriptors as kernel


def _reference(h, pooling):
    h64 = h.double()
    return global_descriptor(h64), spatial_descriptor(h64, pooling)


def test_kernel_is_built():
    """`pip install -e .` (make install) compiles it on this machine; a
    silent fallback to PyTorch would leave every speed figure wrong."""
    assert descriptors._KERNEL is not None, (
        'afd_mm/ops/_descriptors was not built (the install found no C '
        'compiler?): install gcc and run `pip install -e .` again')
    assert kernel_available({})


@pytest.mark.parametrize('pooling', ['a2', 'a1'])
@pytest.mark.parametrize('shape', [(3, 5, 7, 9), (1, 1, 1, 1), (2, 64, 8, 8),
                                   (4, 16, 32, 32), (2, 3, 1, 33)])
def test_kernel_matches_the_formulas(shape, pooling):
    """Odd sizes (no full vector), one channel/position, paper sizes."""
    torch.manual_seed(0)
    h = torch.randn(*shape)
    g, v = kernel(h, absolute=pooling == 'a1')
    g_ref, v_ref = _reference(h, pooling)
    assert g.shape == g_ref.shape and v.shape == v_ref.shape
    assert g.dtype == v.dtype == torch.float32
    assert torch.allclose(g.double(), g_ref, rtol=1e-5, atol=1e-6)
    assert torch.allclose(v.double(), v_ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('make', [
    lambda: torch.randn(2, 3, 4, 4, dtype=torch.float64),
    lambda: torch.randn(2, 4, 4, 3).permute(0, 3, 1, 2),  # channels-last
    lambda: torch.randn(2, 3, 4, 8)[..., ::2],  # strided
    lambda: torch.randn(0, 3, 4, 4),
    lambda: torch.randn(2, 3, 4),
])
def test_kernel_declines_what_it_does_not_serve(make):
    """Then map_descriptors uses PyTorch, with the same values."""
    h = make()
    assert kernel(h) is None
    if h.dim() == 4 and h.numel():
        g, v = map_descriptors(h)
        g_ref, v_ref = _reference(h, 'a2')
        assert torch.allclose(g.double(), g_ref, atol=1e-6)
        assert torch.allclose(v.double(), v_ref, atol=1e-6)


def test_switch_off_and_bad_value(monkeypatch):
    h = torch.randn(2, 3, 4, 4)
    monkeypatch.setenv(KERNEL_ENV, '0')
    assert not kernel_available()
    assert kernel(h) is None
    monkeypatch.setenv(KERNEL_ENV, 'yes')
    message = (r"AFD_MM_KERNELS='yes' is not understood: set it to \"1\" "
               r"\(use afd_mm's C kernels")
    with pytest.raises(ValueError, match=message):
        kernel(h)


def test_torch_path_and_kernel_agree(monkeypatch):
    """What ``map_descriptors`` gives with the kernel and without it."""
    torch.manual_seed(0)
    h = torch.rand(8, 16, 16, 16)
    fused = _chunked_descriptors(h, 'a2')
    monkeypatch.setenv(KERNEL_ENV, '0')
    plain = _chunked_descriptors(h, 'a2')
    for a, b in zip(fused, plain):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_more_threads_leave_the_map_to_pytorch():
    """The kernel is single-threaded: above _MAX_THREADS torch threads
    PyTorch's parallel reductions serve (same values)."""
    h = torch.rand(4, 8, 6, 5)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(descriptors._MAX_THREADS)
        fused = kernel(h)
        torch.set_num_threads(descriptors._MAX_THREADS + 1)
        assert kernel(h) is None
        plain = _chunked_descriptors(h, 'a2')
    finally:
        torch.set_num_threads(threads)
    assert fused is not None
    for a, b in zip(fused, plain):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_gradient_through_the_kernel_forward():
    """A student map: the kernel's forward, the fused backward."""
    torch.manual_seed(0)
    h = torch.randn(3, 4, 5, 6, requires_grad=True)
    weights = (torch.randn(3, 4), torch.randn(3, 5, 6))
    g, v = map_descriptors(h, 'a2')
    grad = torch.autograd.grad((g * weights[0]).sum()
                               + (v * weights[1]).sum(), h)[0]
    ref = torch.autograd.grad(
        (global_descriptor(h) * weights[0]).sum()
        + (spatial_descriptor(h, 'a2') * weights[1]).sum(), h)[0]
    assert torch.allclose(grad, ref, atol=1e-6)
