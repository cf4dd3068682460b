"""Tests of AFDLoss, including a loop-by-loop reference from the spec."""
import copy
import math

import pytest
import torch
from afd_reference import candidate_layer

from afd_mm.models import distance as distance_mod
from afd_mm.models.losses.afd_loss import AFDLoss
from afd_mm.registry import MODELS

# mixed sizes: students larger, equal and smaller than each teacher, and a
# 3 x 3 teacher whose pooling windows overlap (8 -> 3) or replicate (2 -> 3)
TEACHER_SHAPES = [(4, 8, 8), (6, 4, 4), (5, 4, 4), (3, 3, 3)]
STUDENT_SHAPES = [(3, 8, 8), (5, 4, 4), (7, 2, 2)]
BATCH = 4


def _feats(shapes, batch=BATCH, dtype=torch.float32, grad=False):
    return [torch.randn(batch, *shape, dtype=dtype, requires_grad=grad)
            for shape in shapes]


def run(loss, teacher, student):
    """The loss on maps: each reduced by the loss's own feature_transform,
    as the distiller's recorders do."""
    return loss([loss.feature_transform(h) for h in teacher],
                [loss.feature_transform(h) for h in student])


def _randomise_bn(module):
    """Non-trivial BN affine parameters, so the reference must use them."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith(('bn.weight', 'bilinear.1.weight')):
                param.uniform_(0.5, 1.5)
            elif name.endswith(('bn.bias', 'bilinear.1.bias')):
                param.normal_()


# ---------------------------------------------------------------- reference
# Written from the spec with loops over b, t, s; it reads the module's
# weights as tensors and calls none of the implementation's helpers.


def _linear(x, weight, bias):
    return weight @ x + bias


def _batch_norm(rows, gamma, beta, eps=1e-5):
    """Training-mode BN over a list of 1-D rows (biased variance)."""
    mean = sum(rows) / len(rows)
    var = sum((r - mean) ** 2 for r in rows) / len(rows)
    return [(r - mean) / torch.sqrt(var + eps) * gamma + beta for r in rows]


def _pool_channels(h, pooling):
    """v for one sample: h (C, H, W) -> (H, W)."""
    if pooling == 'a2':
        return sum(h[c] ** 2 for c in range(h.shape[0])) / h.shape[0]
    if pooling == 'a1':
        return sum(h[c].abs() for c in range(h.shape[0])) / h.shape[0]
    return torch.stack([h[c].abs() for c in range(h.shape[0])]).amax(0)


def _adaptive_average(v, out_h, out_w):
    """PyTorch's adaptive average pooling: bins [floor(i H / o), ceil)."""
    in_h, in_w = v.shape
    rows = []
    for i in range(out_h):
        h0, h1 = i * in_h // out_h, -(-(i + 1) * in_h // out_h)
        row = []
        for j in range(out_w):
            w0, w1 = j * in_w // out_w, -(-(j + 1) * in_w // out_w)
            row.append(v[h0:h1, w0:w1].mean())
        rows.append(torch.stack(row))
    return torch.stack(rows)


def _pair_distance(w, u, distance):
    if distance == 'l2':
        return ((w - u) ** 2).mean()
    if distance == 'l1':
        return (w - u).abs().mean()
    if distance == 'cosine':
        return 1 - (w @ u) / (w.norm() * u.norm())
    p_u, p_w = u / u.sum(), w / w.sum()
    return (p_u * torch.log(p_u / p_w)).sum()


def _reference_alpha(net, teacher_feats, student_feats):
    n_t, n_s, n_b = len(teacher_feats), len(student_feats), BATCH
    d = net.pos_t.shape[1]
    queries = []  # [t][b] -> (d,)
    for t, h in enumerate(teacher_feats):
        (weight, bias, gamma, beta), _ = candidate_layer(net.embedding, t)
        queries.append(_batch_norm(
            [_linear(h[b].mean(dim=(1, 2)), weight, bias)
             for b in range(n_b)], gamma, beta))
    keys = []  # [s][b] -> (d,)
    for s, h in enumerate(student_feats):
        (weight, bias, gamma, beta), _ = candidate_layer(
            net.embedding, n_t + s)
        keys.append([torch.relu(k) for k in _batch_norm(
            [_linear(h[b].mean(dim=(1, 2)), weight, bias)
             for b in range(n_b)], gamma, beta)])
    # the bilinear BN pools its statistics over all B * S keys
    pairs = [(b, s) for b in range(n_b) for s in range(n_s)]
    linear, bn = net.bilinear
    bilinear = _batch_norm(
        [_linear(keys[s][b], linear.weight, linear.bias) for b, s in pairs],
        bn.weight, bn.bias, bn.eps)
    bilinear = dict(zip(pairs, bilinear))
    alpha = []  # [b][t] -> (S,)
    for b in range(n_b):
        alpha.append([])
        for t in range(n_t):
            logits = torch.stack([
                (bilinear[b, s][t * d:(t + 1) * d] @ queries[t][b]
                 + net.pos_t[t] @ net.pos_s[s]) / math.sqrt(d)
                for s in range(n_s)])
            alpha[b].append(torch.exp(logits) / torch.exp(logits).sum())
    return alpha


def _reference_loss(loss, teacher_feats, student_feats, distance, pooling):
    alpha = _reference_alpha(loss.attention, teacher_feats, student_feats)
    total = 0.
    for t, h_t in enumerate(teacher_feats):
        per_sample = 0.
        for b in range(BATCH):
            v_t = _pool_channels(h_t[b], pooling)
            u = v_t.flatten() / v_t.flatten().norm()
            for s, h_s in enumerate(student_feats):
                v_s = _adaptive_average(_pool_channels(h_s[b], pooling),
                                        *v_t.shape).flatten()
                w = v_s / v_s.norm()
                per_sample = per_sample + alpha[b][t][s] * _pair_distance(
                    w, u, distance)
        total = total + per_sample / BATCH
    return loss.loss_weight * total


@pytest.mark.parametrize('distance, pooling', [
    ('l2', 'a2'), ('l1', 'a1'), ('cosine', 'max'), ('kl', 'a2')])
def test_forward_matches_loop_reference(distance, pooling):
    torch.manual_seed(0)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, loss_weight=3.0,
                   embed_dim=8, distance=distance, pooling=pooling).double()
    _randomise_bn(loss)
    teacher = _feats(TEACHER_SHAPES, dtype=torch.float64)
    student = _feats(STUDENT_SHAPES, dtype=torch.float64, grad=True)
    value = run(loss, teacher, student)
    expected = _reference_loss(loss, teacher, student, distance, pooling)
    assert value.item() == pytest.approx(expected.item(), rel=1e-10)
    # same gradients: into the student through D and alpha, and into
    # every meta-network parameter
    inputs = student + list(loss.parameters())
    grads = torch.autograd.grad(value, inputs)
    expected_grads = torch.autograd.grad(expected, inputs)
    for grad, expected_grad in zip(grads, expected_grads):
        assert torch.allclose(grad, expected_grad, rtol=1e-8, atol=1e-12)


def test_last_alpha_matches_reference_mean():
    torch.manual_seed(1)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8).double()
    teacher = _feats(TEACHER_SHAPES, dtype=torch.float64)
    student = _feats(STUDENT_SHAPES, dtype=torch.float64)
    assert loss.last_alpha is None
    run(loss, teacher, student)
    alpha = _reference_alpha(loss.attention, teacher, student)
    expected = torch.stack([torch.stack(row) for row in alpha]).mean(0)
    assert loss.last_alpha.shape == (4, 3)
    assert not loss.last_alpha.requires_grad
    assert torch.allclose(loss.last_alpha, expected)
    assert torch.allclose(loss.last_alpha.sum(1), torch.ones(4).double())


# ------------------------------------------------------------- behaviour


def test_builds_from_registry_with_scoped_type():
    loss = MODELS.build(dict(
        type='afd_mm.AFDLoss', teacher_shapes=TEACHER_SHAPES,
        student_shapes=STUDENT_SHAPES))
    assert isinstance(loss, AFDLoss)
    assert loss.loss_name == 'loss_afd'
    assert loss.loss_weight == 200.0


@pytest.mark.parametrize('teacher_channels, student_channels, expected', [
    ([16] * 9 + [32] * 9 + [64] * 9, [16] * 3 + [32] * 3 + [64] * 3,
     643_200),
    ([32] * 6 + [64] * 6 + [128] * 6, [32] * 2 + [64] * 2 + [128] * 2,
     543_488),
    ([64] * 3 + [128] * 4 + [256] * 6 + [512] * 3,
     [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2, 1_009_664),
])
def test_parameter_counts(teacher_channels, student_channels, expected):
    loss = AFDLoss([(c, 4, 4) for c in teacher_channels],
                   [(c, 4, 4) for c in student_channels])
    assert sum(p.numel() for p in loss.parameters()) == expected


def test_zero_when_student_values_equal_teacher_values():
    h = torch.randn(BATCH, 4, 4, 4)
    identical = AFDLoss([(4, 4, 4)] * 2, [(4, 4, 4)] * 2, embed_dim=8)
    assert run(identical, [h, h], [h.clone(), h.clone()]).item() == \
        pytest.approx(0., abs=1e-6)
    # a student map smaller than the teacher's, up-sampled by replication
    small = torch.randn(BATCH, 6, 2, 2)
    big = small.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    replicated = AFDLoss([(6, 4, 4)], [(6, 2, 2)], embed_dim=8)
    assert run(replicated, [big], [small]).item() == pytest.approx(
        0., abs=1e-6)
    # constant maps have equal values at every size: D = 0 for all pairs
    mixed = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8)
    teacher = [torch.full((BATCH, *shape), 3.) for shape in TEACHER_SHAPES]
    student = [torch.full((BATCH, *shape), 0.5) for shape in STUDENT_SHAPES]
    assert run(mixed, teacher, student).item() == pytest.approx(
        0., abs=1e-6)
    # and a different map is not at zero distance
    assert run(replicated, [big], [small.flip(2)]).item() > 0


def test_gradient_reaches_student_and_meta_network_not_teacher():
    torch.manual_seed(0)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8).double()
    _randomise_bn(loss)
    teacher = _feats(TEACHER_SHAPES, dtype=torch.float64, grad=True)
    student = _feats(STUDENT_SHAPES, dtype=torch.float64, grad=True)
    run(loss, teacher, student).backward()
    assert all(h.grad is None for h in teacher)
    assert all(h.grad.abs().sum() > 0 for h in student)
    # A Linear bias followed by training-mode BN is cancelled by the BN's
    # mean, and the bilinear BN's shift adds <beta_t, q_t> to every logit
    # of row t, which the softmax over s ignores: these get zero gradient.
    dead = {'attention.bilinear.0.bias', 'attention.bilinear.1.bias'}
    # (one Linear group per channel count: 4, 6, 5, 3 and 7)
    dead |= {f'attention.embedding.linears.{k}.bias' for k in range(5)}
    for name, param in loss.named_parameters():
        assert param.grad is not None, name
        if name in dead:
            assert param.grad.abs().max() < 1e-10, name
        else:
            assert param.grad.abs().sum() > 0, name


def test_trains_under_cpu_autocast():
    """`tools/train.py --amp` (AmpOptimWrapper) runs the loss under
    autocast: bfloat16 maps from the network, L_AFD in float32, finite
    float32 gradients."""
    torch.manual_seed(0)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8)
    teacher = _feats(TEACHER_SHAPES)
    student = _feats(STUDENT_SHAPES, grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        value = run(loss, teacher, student)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    for h in student:
        assert h.grad.dtype == torch.float32
        assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0
    for name, param in loss.named_parameters():
        assert torch.isfinite(param.grad).all(), name


def test_loss_weight_scales_l_afd():
    torch.manual_seed(0)
    teacher, student = _feats(TEACHER_SHAPES), _feats(STUDENT_SHAPES)
    torch.manual_seed(0)
    one = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, loss_weight=1.0)
    torch.manual_seed(0)
    beta = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES)
    assert run(beta, teacher, student).item() == pytest.approx(
        200 * run(one, teacher, student).item(), rel=1e-5)


def test_student_values_once_per_teacher_size(monkeypatch):
    sizes = []
    original = distance_mod.student_values

    def counting(stacks, size):
        sizes.append(size)
        return original(stacks, size)

    monkeypatch.setattr(distance_mod, 'student_values', counting)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8)
    run(loss, _feats(TEACHER_SHAPES), _feats(STUDENT_SHAPES))
    assert sorted(sizes) == [(3, 3), (4, 4), (8, 8)]


@pytest.mark.parametrize('pooling', ['a2', 'a1', 'max'])
@pytest.mark.parametrize('distance', ['l2', 'l1', 'kl', 'cosine'])
def test_every_option_gives_finite_non_negative_loss(distance, pooling):
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8,
                   distance=distance, pooling=pooling)
    value = run(loss, _feats(TEACHER_SHAPES), _feats(STUDENT_SHAPES))
    assert torch.isfinite(value) and value.item() >= 0


def test_ordered_links_pick_the_proportional_student():
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, loss_weight=1.0,
                   links='ordered')
    assert list(loss.parameters()) == []
    teacher, student = _feats(TEACHER_SHAPES), _feats(STUDENT_SHAPES)
    dist = distance_mod.distance_matrix(
        [distance_mod.spatial_descriptor(h) for h in teacher],
        [distance_mod.spatial_descriptor(h) for h in student])  # (B, T, S)
    # round(t * 2 / 3) for t = 0..3 -> students 0, 1, 1, 2
    expected = sum(dist[:, t, s].mean() for t, s in enumerate([0, 1, 1, 2]))
    assert run(loss, teacher, student).item() == pytest.approx(expected.item())
    assert loss.last_alpha.argmax(1).tolist() == [0, 1, 1, 2]


def test_random_and_fixed_links(tmp_path):
    first = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, links='random',
                    link_seed=5)
    again = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, links='random',
                    link_seed=5)
    assert torch.equal(first.attention.links, again.attention.links)
    path = str(tmp_path / 'alpha.pt')
    torch.save(torch.tensor([[1., 1., 2.]] * 4), path)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, links='fixed',
                   links_file=path)
    student = _feats(STUDENT_SHAPES, grad=True)
    run(loss, _feats(TEACHER_SHAPES), student).backward()
    assert torch.allclose(loss.last_alpha,
                          torch.tensor([[0.25, 0.25, 0.5]] * 4))
    assert all(h.grad.abs().sum() > 0 for h in student)


def test_fixed_links_file_wrong_shape_message(tmp_path):
    path = str(tmp_path / 'alpha.pt')
    torch.save(torch.ones(3, 4), path)
    with pytest.raises(ValueError) as info:
        AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, links='fixed',
                links_file=path)
    assert str(info.value) == (
        f'links_file {path!r} holds a matrix of shape (3, 4), expected '
        f'T x S = 4 x 3 (teacher x student candidates); change the '
        f'`links_file` key of AFDLoss or the recorders so the counts match.')


# ---------------------------------------------------------- error messages


@pytest.mark.parametrize('side', ['teacher', 'student'])
def test_zero_candidates_message(side):
    shapes = {'teacher_shapes': TEACHER_SHAPES,
              'student_shapes': STUDENT_SHAPES}
    shapes[f'{side}_shapes'] = []
    with pytest.raises(ValueError, match=(
            f'AFDLoss got 0 {side} candidates \\({side}_shapes is empty\\); '
            f"change the patterns of the distiller's `{side}_recorder` so "
            f'they match at least one module')):
        AFDLoss(**shapes)


def test_vector_candidate_rejected_at_init():
    with pytest.raises(ValueError, match=(
            r'AFDLoss needs \(C, H, W\) feature maps for its distance, but '
            r'student candidate 1 has shape \(64,\); change the patterns of '
            r"the distiller's `student_recorder` to hook modules that output "
            r'maps')):
        AFDLoss(TEACHER_SHAPES, [(3, 8, 8), (64, )])


@pytest.mark.parametrize('key, value, allowed', [
    ('distance', 'l3', r"\('l2', 'l1', 'kl', 'cosine'\)"),
    ('pooling', 'avg', r"\('a2', 'a1', 'max'\)"),
    ('links', 'learned', r"\('afd', 'ordered', 'random', 'fixed'\)"),
    ('linear_init', 'kaiming', r"\('default', 'xavier'\)"),
])
def test_unknown_option_messages(key, value, allowed):
    with pytest.raises(ValueError, match=(
            f"{key}='{value}' is not supported; choose one of {allowed} "
            f'\\(the `{key}` key of AFDLoss\\)')):
        AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, **{key: value})
    if key != 'links':  # checked at init whatever the link mode
        with pytest.raises(ValueError, match=f"{key}='{value}'"):
            AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, links='ordered',
                    **{key: value})


def test_links_file_option_messages(tmp_path):
    with pytest.raises(ValueError, match=r"links='fixed' needs a file: set "
                       r'the `links_file` key of AFDLoss'):
        AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, links='fixed')
    with pytest.raises(ValueError, match=(
            r"links_file='a\.pt' is only read with links='fixed', but "
            r"links='afd'; set `links` to 'fixed' or `links_file` to None")):
        AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, links_file='a.pt')


def test_embed_dim_message():
    with pytest.raises(ValueError, match=r'embed_dim=0 must be a positive '
                       r'int \(the `embed_dim` key of AFDLoss'):
        AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=0)


def test_forward_wrong_number_of_feats_message():
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8)
    with pytest.raises(ValueError, match=(
            r'AFDLoss was built for 3 student candidates but got 2 student '
            r"feats; the distiller's `student_recorder` must record the "
            r'same modules')):
        run(loss, _feats(TEACHER_SHAPES), _feats(STUDENT_SHAPES[:2]))
    with pytest.raises(ValueError, match=r'built for 4 teacher candidates '
                       r'but got 5 teacher feats'):
        run(loss, _feats(TEACHER_SHAPES + [(4, 8, 8)]),
            _feats(STUDENT_SHAPES))


def test_forward_wrong_channels_message():
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8)
    teacher = _feats(TEACHER_SHAPES)
    teacher[2] = torch.randn(BATCH, 9, 4, 4)
    with pytest.raises(ValueError, match=(
            r'teacher feat 2 has g\(h\) of shape \(4, 9\), expected '
            r'\(B, 5\) as found by the probe forward; the '
            r'`teacher_recorder` must record the same modules')):
        run(loss, teacher, _feats(STUDENT_SHAPES))


# ------------------------------------------------------------------ CUDA
cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason='needs a CUDA device')


@cuda
def test_cuda_equals_cpu_loss_and_gradients():
    torch.manual_seed(0)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8)
    on_gpu = copy.deepcopy(loss).cuda()
    teacher = _feats(TEACHER_SHAPES)
    student = _feats(STUDENT_SHAPES, grad=True)
    student_gpu = [h.detach().cuda().requires_grad_() for h in student]
    value = run(loss, teacher, student)
    value_gpu = run(on_gpu, [h.cuda() for h in teacher], student_gpu)
    torch.testing.assert_close(value_gpu.cpu(), value, rtol=1e-4, atol=1e-6)
    value.backward()
    value_gpu.backward()
    for h, h_gpu in zip(student, student_gpu):
        torch.testing.assert_close(h_gpu.grad.cpu(), h.grad, rtol=1e-3,
                                   atol=1e-6)
    for (name, p), p_gpu in zip(loss.named_parameters(),
                                on_gpu.parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p.grad, rtol=1e-3,
                                   atol=1e-5, msg=name)


@cuda
def test_trains_under_cuda_fp16_autocast():
    torch.manual_seed(0)
    loss = AFDLoss(TEACHER_SHAPES, STUDENT_SHAPES, embed_dim=8).cuda()
    teacher = [h.cuda() for h in _feats(TEACHER_SHAPES)]
    student = [h.cuda().requires_grad_() for h in _feats(STUDENT_SHAPES)]
    with torch.autocast('cuda', dtype=torch.float16):
        value = run(loss, teacher, [h * 1 for h in student])
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    for h in student:
        assert torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0
    for name, param in loss.named_parameters():
        assert torch.isfinite(param.grad).all(), name


def _strided(channels_strides, height, width):
    """(C, H, W) shapes of maps at the given strides of an H x W input
    (ceil division, as strided convs with padding give)."""
    return [(c, -(-height // s), -(-width // s)) for c, s in channels_strides]


def test_sizes_that_change_every_batch_match_loop_reference():
    """Detection batches are padded per batch: the loss is built from the
    probe's channel counts, and each batch brings other (H, W) per
    candidate, non-square, with teachers of equal size in one batch and
    of different sizes in the next, compared with the loop reference."""
    torch.manual_seed(0)
    teacher_cs = [(4, 4), (6, 8), (5, 16), (3, 16)]  # (C, stride)
    student_cs = [(3, 4), (5, 8), (7, 32)]
    loss = AFDLoss(_strided(teacher_cs, 32, 32), _strided(student_cs, 32, 32),
                   loss_weight=2.0, embed_dim=8).double()
    _randomise_bn(loss)
    for height, width in [(64, 96), (96, 40), (36, 20), (32, 32)]:
        teacher_shapes = _strided(teacher_cs, height, width)
        student_shapes = _strided(student_cs, height, width)
        teacher = _feats(teacher_shapes, dtype=torch.float64)
        student = _feats(student_shapes, dtype=torch.float64, grad=True)
        value = run(loss, teacher, student)
        expected = _reference_loss(loss, teacher, student, 'l2', 'a2')
        assert value.item() == pytest.approx(expected.item(), rel=1e-10)
        grads = torch.autograd.grad(value, student)
        expected_grads = torch.autograd.grad(expected, student)
        for grad, expected_grad in zip(grads, expected_grads):
            assert torch.allclose(grad, expected_grad, rtol=1e-8,
                                  atol=1e-12)
