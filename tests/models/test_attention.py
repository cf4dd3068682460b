"""Tests of afd_mm.models.attention: the meta-network and fixed links."""
import math

import numpy as np
import pytest
import torch

from afd_mm.models.attention import (
    AFDAttention,
    CandidateEmbedding,
    FixedLinks,
    fixed_links,
    link_logits,
)

# (teacher channels, student channels, parameter count from the spec)
SETTINGS = {
    'R56->R20': ([16] * 9 + [32] * 9 + [64] * 9,
                 [16] * 3 + [32] * 3 + [64] * 3, 643_200),
    'WRN-40-2->WRN-16-2': ([32] * 6 + [64] * 6 + [128] * 6,
                           [32] * 2 + [64] * 2 + [128] * 2, 543_488),
    'R34->R18 ImageNet': ([64] * 3 + [128] * 4 + [256] * 6 + [512] * 3,
                          [64] * 2 + [128] * 2 + [256] * 2 + [512] * 2,
                          1_009_664),
}


def _feats(channels, batch=4, size=4):
    return [torch.randn(batch, c, size, size) for c in channels]


@pytest.mark.parametrize('name', list(SETTINGS))
def test_parameter_count_matches_spec(name):
    teacher, student, expected = SETTINGS[name]
    net = AFDAttention(teacher, student)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_alpha_shape_rows_sum_to_one_and_per_sample():
    torch.manual_seed(0)
    net = AFDAttention([4, 6, 8], [3, 5], embed_dim=8)
    alpha = net(_feats([4, 6, 8]), _feats([3, 5]))
    assert alpha.shape == (4, 3, 2)
    assert (alpha >= 0).all()
    assert torch.allclose(alpha.sum(dim=2), torch.ones(4, 3))
    assert not torch.allclose(alpha[0], alpha[1])


def test_vector_candidates_serve_as_queries_and_keys():
    net = AFDAttention([4, 6], [3], embed_dim=8)
    teacher = [torch.randn(4, 4), torch.randn(4, 6, 2, 2)]
    alpha = net(teacher, [torch.randn(4, 3)])
    assert alpha.shape == (4, 2, 1)
    assert torch.allclose(alpha, torch.ones(4, 2, 1))


def test_queries_and_bilinear_keys_shapes():
    net = AFDAttention([4, 6, 8], [3, 5], embed_dim=8)
    assert net.queries(_feats([4, 6, 8])).shape == (4, 3, 8)
    assert net.bilinear_keys(_feats([3, 5])).shape == (4, 2, 3, 8)
    assert net.pos_t.shape == (3, 8) and net.pos_s.shape == (2, 8)


def test_link_logits_against_loop():
    b, s, t, d = 2, 3, 4, 5
    keys, queries = torch.randn(b, s, t, d), torch.randn(b, t, d)
    pos_t, pos_s = torch.randn(t, d), torch.randn(s, d)
    logits = link_logits(keys, queries, pos_t, pos_s)
    assert logits.shape == (b, t, s)
    for i in range(b):
        for j in range(t):
            for k in range(s):
                expected = (keys[i, k, j] @ queries[i, j]
                            + pos_t[j] @ pos_s[k]) / math.sqrt(d)
                assert logits[i, j, k].item() == pytest.approx(
                    expected.item(), abs=1e-5)


def test_eval_mode_runs_on_one_sample():
    net = AFDAttention([4, 6], [3, 5], embed_dim=8).eval()
    alpha = net(_feats([4, 6], batch=1), _feats([3, 5], batch=1))
    assert alpha.shape == (1, 2, 2)


def test_frozen_layer_bn_uses_its_running_stats_in_training():
    """A BN put in eval mode alone (norm_eval-style) keeps its statistics,
    even while the meta-network trains: no batch dependence."""
    torch.manual_seed(0)
    net = AFDAttention([4, 6], [3, 5], embed_dim=8).train()
    net.query_layers.eval()
    net.key_layers.eval()
    net.bilinear[1].eval()
    t, s = _feats([4, 6], batch=6), _feats([3, 5], batch=6)
    whole = net(t, s)
    half = net([h[:3] for h in t], [h[:3] for h in s])
    assert torch.allclose(whole[:3], half, atol=1e-6)
    assert torch.equal(net.bilinear[1].running_mean,
                       torch.zeros_like(net.bilinear[1].running_mean))


def test_linear_init_default_vs_xavier():
    torch.manual_seed(0)
    default = AFDAttention([64], [64], embed_dim=128)
    xavier = AFDAttention([64], [64], embed_dim=128, linear_init='xavier')
    linear = xavier.bilinear[0]  # Linear(128 -> 128)
    assert torch.equal(linear.bias, torch.zeros(128))
    assert linear.weight.std().item() == pytest.approx(
        math.sqrt(2 / 256), rel=0.05)
    assert default.bilinear[0].bias.abs().sum() > 0
    # PyTorch's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
    bound = 1 / math.sqrt(128)
    assert default.bilinear[0].weight.abs().max() <= bound


def _embedding_and_separate_layers(channels, relu):
    """A float64 CandidateEmbedding with random BN affine parameters, and
    N separate Linear + BN1d layers holding the same values."""
    emb = CandidateEmbedding(channels, 8, relu=relu).double()
    with torch.no_grad():
        for name, param in emb.named_parameters():
            if name.endswith(('_gamma', '_beta')):
                param.normal_()
    layers = []
    for i, c in enumerate(channels):
        layer = torch.nn.Sequential(torch.nn.Linear(c, 8),
                                    torch.nn.BatchNorm1d(8)).double()
        with torch.no_grad():  # weight, bias, gamma, beta in this order
            for param, value in zip(layer.parameters(), emb.layer(i)):
                param.copy_(value)
        layers.append(layer)
    return emb, layers


@pytest.mark.parametrize('relu', [False, True])
def test_candidate_embedding_equals_separate_linear_bn_layers(relu):
    """Grouped storage, same maths: N separate Linear + BN1d (+ ReLU)."""
    torch.manual_seed(0)
    channels = [4, 6, 4, 5, 6]  # groups out of network order
    emb, layers = _embedding_and_separate_layers(channels, relu)
    act = torch.relu if relu else (lambda x: x)
    for step in range(3):  # training: batch statistics, running updates
        descs = [torch.randn(5, c, dtype=torch.float64) for c in channels]
        out = emb(descs)
        assert out.shape == (5, len(channels), 8)
        for i, layer in enumerate(layers):
            assert torch.allclose(out[:, i], act(layer(descs[i])))
    for c, idx in emb.index.items():
        for j, i in enumerate(idx):
            assert torch.allclose(getattr(emb, f'c{c}_running_mean')[j],
                                  layers[i][1].running_mean)
            assert torch.allclose(getattr(emb, f'c{c}_running_var')[j],
                                  layers[i][1].running_var)
    assert emb.num_batches_tracked.item() == 3
    emb.eval()
    descs = [torch.randn(1, c, dtype=torch.float64) for c in channels]
    out = emb(descs)
    for i, layer in enumerate(layers):
        assert torch.allclose(out[:, i], act(layer.eval()(descs[i])))


@pytest.mark.parametrize('relu', [False, True])
@pytest.mark.parametrize('channels', [[4, 6, 4, 5, 6], [4, 4, 6, 6, 6]])
def test_candidate_embedding_gradients_equal_separate_layers(relu, channels):
    """The training path's hand-written backward (``_Embeddings``) gives
    the gradients of N separate Linear + BN1d (+ ReLU) layers, for groups
    in and out of network order."""
    torch.manual_seed(0)
    emb, layers = _embedding_and_separate_layers(channels, relu)
    descs = [torch.randn(6, c, dtype=torch.float64, requires_grad=True)
             for c in channels]
    weights = torch.randn(6, len(channels), 8, dtype=torch.float64)
    (emb(descs) * weights).sum().backward()
    act = torch.relu if relu else (lambda x: x)
    copies = [d.detach().clone().requires_grad_() for d in descs]
    sum((act(layer(x)) * weights[:, i]).sum()
        for i, (layer, x) in enumerate(zip(layers, copies))).backward()
    for i, layer in enumerate(layers):
        torch.testing.assert_close(descs[i].grad, copies[i].grad)
        c = channels[i]
        j = emb.index[c].index(i)
        for name, param in zip(('weight', 'bias', 'gamma', 'beta'),
                               layer.parameters()):
            grad = getattr(emb, f'c{c}_{name}').grad[j]
            torch.testing.assert_close(grad, param.grad, atol=1e-10,
                                       rtol=1e-7)


def test_candidate_embedding_init_and_messages():
    torch.manual_seed(0)
    emb = CandidateEmbedding([64] * 4, 128)
    bound = 1 / math.sqrt(64)  # nn.Linear's default init
    assert emb.c64_weight.abs().max() <= bound
    assert emb.c64_weight.std().item() == pytest.approx(
        bound / math.sqrt(3), rel=0.05)
    emb.init_xavier()
    assert torch.equal(emb.c64_bias, torch.zeros(4, 128))
    assert emb.c64_weight.std().item() == pytest.approx(
        math.sqrt(2 / (64 + 128)), rel=0.05)
    assert 'C=64' in repr(emb)
    with pytest.raises(ValueError, match='at least 2 samples'):
        emb([torch.randn(1, 64)] * 4)
    with pytest.raises(ValueError, match='built for 4 candidates'):
        emb([torch.randn(2, 64)] * 3)


def test_linear_init_unknown_message():
    with pytest.raises(ValueError, match=r"linear_init='kaiming' is not "
                       r"supported; choose one of \('default', 'xavier'\) "
                       r'\(the `linear_init` key of AFDLoss\)'):
        AFDAttention([4], [4], linear_init='kaiming')


def test_ordered_links_r56_r20():
    links = fixed_links('ordered', 27, 9)
    expected = [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6,
                6, 6, 7, 7, 7, 8, 8]
    assert links.shape == (27, 9)
    assert links.argmax(dim=1).tolist() == expected
    assert torch.equal(links.sum(dim=1), torch.ones(27))


@pytest.mark.parametrize('num_t, num_s, expected', [
    (1, 3, [2]),  # a single teacher links to the last student
    (3, 2, [0, 1, 1]),  # t = 1 gives 0.5: halves round up
    (3, 1, [0, 0, 0]),
    (2, 4, [0, 3]),
])
def test_ordered_links_edge_cases(num_t, num_s, expected):
    assert fixed_links('ordered', num_t, num_s).argmax(1).tolist() == expected


def test_random_links_reproducible_one_hot():
    first = fixed_links('random', 27, 9, seed=3)
    assert torch.equal(first, fixed_links('random', 27, 9, seed=3))
    assert not torch.equal(first, fixed_links('random', 27, 9, seed=4))
    assert torch.equal(first.sum(dim=1), torch.ones(27))
    assert set(first.unique().tolist()) == {0., 1.}
    generator = torch.Generator().manual_seed(3)
    drawn = torch.randint(9, (27, ), generator=generator)
    assert first.argmax(dim=1).tolist() == drawn.tolist()


@pytest.mark.parametrize('suffix', ['.pt', '.npy'])
def test_fixed_links_from_file_rows_renormalised(tmp_path, suffix):
    matrix = torch.tensor([[1., 3.], [2., 2.], [0., 5.]])
    path = str(tmp_path / f'alpha{suffix}')
    if suffix == '.pt':
        torch.save(matrix, path)
    else:
        np.save(path, matrix.numpy())
    links = fixed_links('fixed', 3, 2, path=path)
    expected = torch.tensor([[0.25, 0.75], [0.5, 0.5], [0., 1.]])
    assert links.dtype == torch.float32
    assert torch.allclose(links, expected)


def test_fixed_links_wrong_shape_message(tmp_path):
    path = str(tmp_path / 'alpha.pt')
    torch.save(torch.rand(9, 27), path)
    with pytest.raises(ValueError) as info:
        fixed_links('fixed', 27, 9, path=path)
    message = str(info.value)
    assert path in message
    assert 'shape (9, 27), expected T x S = 27 x 9' in message
    assert '`links_file` key of AFDLoss' in message


def test_fixed_links_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"links='fixed' needs a file: set "
                       r'the `links_file` key of AFDLoss to a \.pt or \.npy '
                       r'file holding a 2 x 3 link matrix'):
        fixed_links('fixed', 2, 3)
    missing = str(tmp_path / 'missing.pt')
    with pytest.raises(FileNotFoundError, match=r'links_file .*missing\.pt'
                       r".* does not exist; set the `links_file` key"):
        fixed_links('fixed', 2, 3, path=missing)
    text = tmp_path / 'alpha.txt'
    text.write_text('1 0')
    with pytest.raises(ValueError, match=r'alpha\.txt.* has an unknown '
                       r'extension; use a \.pt, \.pth or \.npy file'):
        fixed_links('fixed', 2, 3, path=str(text))
    negative = str(tmp_path / 'negative.npy')
    np.save(negative, np.array([[1., -1.], [1., 1.]]))
    with pytest.raises(ValueError, match=r'negative\.npy.* must hold '
                       r'non-negative weights with a positive sum in every '
                       r'row; change the `links_file` key of AFDLoss'):
        fixed_links('fixed', 2, 2, path=negative)
    not_tensor = str(tmp_path / 'dict.pt')
    torch.save({'alpha': torch.ones(2, 2)}, not_tensor)
    with pytest.raises(ValueError, match=r'dict\.pt.* holds a dict, expected '
                       r'a 2 x 2 tensor'):
        fixed_links('fixed', 2, 2, path=not_tensor)


def test_fixed_links_unknown_mode_message():
    with pytest.raises(ValueError, match=r"links='afd' is not a fixed-link "
                       r"mode; choose one of \('ordered', 'random', "
                       r"'fixed'\) \(the `links` key of AFDLoss\)"):
        fixed_links('afd', 2, 2)


def test_fixed_links_module_broadcasts_without_parameters():
    module = FixedLinks('ordered', 3, 2)
    alpha = module(_feats([4, 4, 4], batch=5), _feats([3, 3], batch=5))
    assert alpha.shape == (5, 3, 2)
    assert torch.equal(alpha[4], fixed_links('ordered', 3, 2))
    assert list(module.parameters()) == []
    assert module.state_dict() == {}


def test_candidate_embedding_loads_the_per_candidate_layout():
    """Checkpoints of the earlier ModuleList(Sequential(Linear, BN1d))
    layout load into the stacked one, candidate by candidate."""
    torch.manual_seed(0)
    channels = [4, 6, 4]
    old = torch.nn.ModuleList(
        torch.nn.Sequential(torch.nn.Linear(c, 8), torch.nn.BatchNorm1d(8))
        for c in channels)
    for layer in old:
        layer[1].running_mean.normal_()
        layer[1].num_batches_tracked.fill_(7)
    emb = CandidateEmbedding(channels, 8)
    emb.load_state_dict(old.state_dict())
    for i, layer in enumerate(old):
        weight, bias, gamma, beta = emb.layer(i)
        assert torch.equal(weight, layer[0].weight)
        assert torch.equal(bias, layer[0].bias)
        assert torch.equal(gamma, layer[1].weight)
        assert torch.equal(beta, layer[1].bias)
    assert torch.equal(emb.c4_running_mean[1], old[2][1].running_mean)
    assert emb.num_batches_tracked.item() == 7
    emb.eval()
    descs = [torch.randn(3, c) for c in channels]
    out = emb(descs)
    for i, layer in enumerate(old):
        assert torch.allclose(out[:, i], layer.eval()(descs[i]), atol=1e-6)


@pytest.mark.parametrize('chunk', [None, 4])
def test_bilinear_content_values_and_gradcheck(monkeypatch, chunk):
    """The fused BN + dot product against its formula, in one chunk and
    in chunks of one or two teachers / rows."""
    from afd_mm.models import attention
    if chunk is not None:
        monkeypatch.setattr(attention, '_CHUNK_ELEMENTS', chunk)
    gen = torch.Generator().manual_seed(0)
    b, num_t, num_s, d = 3, 4, 2, 2

    def rand(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64,
                           requires_grad=True)

    queries, raw_keys = rand(b, num_t, d), rand(b, num_s, d)
    weight, gamma, shift = rand(num_t * d, d), rand(num_t, d), rand(num_t, d)

    def content(queries, raw_keys, weight, gamma, shift):
        out, var, mean = attention._BilinearContent.apply(
            queries, raw_keys, weight, gamma, shift, 1e-5)
        return out

    inputs = (queries, raw_keys, weight, gamma, shift)
    # BN1d in training over the B * S keys, then <., q_t>
    x = raw_keys.reshape(-1, d) @ weight.t()  # (B * S, T * d)
    bn = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
    bn = (bn * gamma.reshape(-1) + shift.reshape(-1)).view(b, num_s, num_t,
                                                          d)
    expected = torch.einsum('bstd,btd->bts', bn, queries)
    torch.testing.assert_close(content(*inputs), expected)
    _, var, mean = attention._BilinearContent.apply(*inputs, 1e-5)
    torch.testing.assert_close(var, x.var(0, unbiased=False))
    torch.testing.assert_close(mean, raw_keys.reshape(-1, d).mean(0))
    assert torch.autograd.gradcheck(content, inputs)


def test_softmax_last_dim_values_and_gradcheck():
    from afd_mm.models.attention import _SoftmaxLastDim
    x = torch.randn(3, 4, 5, dtype=torch.float64) * 30  # large logits
    x[0, 0] = -1e4  # a row far below zero: the max is subtracted first
    x.requires_grad_()
    torch.testing.assert_close(_SoftmaxLastDim.apply(x), x.softmax(dim=-1))
    assert torch.autograd.gradcheck(_SoftmaxLastDim.apply, (x, ))
