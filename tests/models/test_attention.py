"""Tests of afd_mm.models.attention: the meta-network."""
import copy
import math

import pytest
import torch
from afd_reference import candidate_layer

from afd_mm.models.attention import AFDAttention, CandidateEmbedding

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


def _descs(channels, batch=4):
    return [torch.randn(batch, c) for c in channels]


@pytest.mark.parametrize('name', list(SETTINGS))
def test_parameter_count_matches_spec(name):
    teacher, student, expected = SETTINGS[name]
    net = AFDAttention(teacher, student)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_alpha_shape_rows_sum_to_one_and_per_sample():
    torch.manual_seed(0)
    net = AFDAttention([4, 6, 8], [3, 5], embed_dim=8)
    alpha = net(_descs([4, 6, 8]), _descs([3, 5]))
    assert alpha.shape == (4, 3, 2)
    assert (alpha >= 0).all()
    assert torch.allclose(alpha.sum(dim=2), torch.ones(4, 3))
    assert not torch.allclose(alpha[0], alpha[1])


def _reference_logits(net, g_t, g_s):
    """The spec's logits with the bilinear keys formed explicitly."""
    x = net.embedding(g_t + g_s)  # (B, T + S, d)
    queries, keys = x[:, :len(g_t)], x[:, len(g_t):].relu()
    b, s, d = keys.shape
    k_st = net.bilinear(keys.reshape(b * s, d)).view(b, s, -1, d)
    logits = torch.empty(b, queries.shape[1], s, dtype=keys.dtype)
    for i in range(b):
        for t in range(queries.shape[1]):
            for j in range(s):
                logits[i, t, j] = (k_st[i, j, t] @ queries[i, t] + net.pos_t[t]
                                   @ net.pos_s[j]) / math.sqrt(d)
    return logits


def test_factorised_bilinear_content_equals_explicit_bn_and_gradients():
    """Training mode: the factorised content gives the values, gradients
    and BN running statistics of bn(linear(keys)) followed by the dot
    product (the reference below runs the modules themselves)."""
    torch.manual_seed(0)
    net = AFDAttention([4, 6, 4], [3, 5], embed_dim=8).double()
    with torch.no_grad():
        net.bilinear[1].weight.uniform_(0.5, 1.5)
        net.bilinear[1].bias.normal_()
    ref = copy.deepcopy(net)
    g_t = [x.double() for x in _descs([4, 6, 4], batch=5)]
    g_s = [x.double().requires_grad_() for x in _descs([3, 5], batch=5)]
    alpha = net(g_t, g_s)
    expected = _reference_logits(ref, g_t, g_s).softmax(dim=2)
    torch.testing.assert_close(alpha, expected)
    weights = torch.randn_like(alpha)
    grads = torch.autograd.grad((alpha * weights).sum(),
                                [*g_s, *net.parameters()])
    ref_grads = torch.autograd.grad((expected * weights).sum(),
                                    [*g_s, *ref.parameters()])
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)
    for name in ('running_mean', 'running_var', 'num_batches_tracked'):
        torch.testing.assert_close(getattr(net.bilinear[1], name),
                                   getattr(ref.bilinear[1], name))


def test_bilinear_content_modules_path_outside_training():
    """Eval mode runs the BN module on the explicit keys: same alpha as
    the reference built from the modules."""
    torch.manual_seed(0)
    net = AFDAttention([4, 6], [3, 5], embed_dim=8)
    net(_descs([4, 6], batch=6), _descs([3, 5], batch=6))  # some stats
    net.eval()
    g_t, g_s = _descs([4, 6], batch=1), _descs([3, 5], batch=1)
    torch.testing.assert_close(
        net(g_t, g_s), _reference_logits(net, g_t, g_s).softmax(dim=2))


def test_eval_mode_runs_on_one_sample():
    net = AFDAttention([4, 6], [3, 5], embed_dim=8).eval()
    alpha = net(_descs([4, 6], batch=1), _descs([3, 5], batch=1))
    assert alpha.shape == (1, 2, 2)


def test_frozen_layer_bn_uses_its_running_stats_in_training():
    """A BN put in eval mode alone (norm_eval-style) keeps its statistics,
    even while the meta-network trains: no batch dependence."""
    torch.manual_seed(0)
    net = AFDAttention([4, 6], [3, 5], embed_dim=8).train()
    net.embedding.eval()
    net.bilinear[1].eval()
    t, s = _descs([4, 6], batch=6), _descs([3, 5], batch=6)
    whole = net(t, s)
    half = net([h[:3] for h in t], [h[:3] for h in s])
    assert torch.allclose(whole[:3], half, atol=1e-6)
    assert torch.equal(net.bilinear[1].running_mean,
                       torch.zeros_like(net.bilinear[1].running_mean))


def test_sync_batchnorm_conversion_reaches_every_bn():
    """mmengine's convert_sync_batchnorm (``model_wrapper_cfg`` /
    ``sync_bn='torch'``) turns every BN of the meta-network into SyncBN;
    none is hidden as raw tensors."""
    from mmengine.model import convert_sync_batchnorm
    net = AFDAttention([4, 6, 4], [3, 5], embed_dim=8)
    bns = [m for m in net.modules()
           if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 2  # queries and keys, bilinear
    converted = convert_sync_batchnorm(net)
    kinds = {type(m) for m in converted.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}
    assert kinds == {torch.nn.SyncBatchNorm}
    assert sum(isinstance(m, torch.nn.SyncBatchNorm)
               for m in converted.modules()) == 2
    # outside a process group SyncBN normalises like BN: same alpha
    g_t, g_s = _descs([4, 6, 4], batch=5), _descs([3, 5], batch=5)
    torch.manual_seed(0)
    plain = AFDAttention([4, 6, 4], [3, 5], embed_dim=8)
    synced = convert_sync_batchnorm(copy.deepcopy(plain))
    torch.testing.assert_close(synced(g_t, g_s), plain(g_t, g_s))


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
    query = xavier.embedding.linears[0]  # Conv1d, 2 candidates
    assert torch.equal(query.bias, torch.zeros(256))
    assert query.weight.std().item() == pytest.approx(
        math.sqrt(2 / (64 + 128)), rel=0.05)


def _embedding_and_separate_layers(channels):
    """A float64 CandidateEmbedding with random BN affine parameters, and
    N separate Linear + BN1d layers holding the same values."""
    emb = CandidateEmbedding(channels, 8).double()
    with torch.no_grad():
        emb.bn.weight.normal_()
        emb.bn.bias.normal_()
    layers = []
    for i, c in enumerate(channels):
        layer = torch.nn.Sequential(torch.nn.Linear(c, 8),
                                    torch.nn.BatchNorm1d(8)).double()
        with torch.no_grad():  # weight, bias, gamma, beta in this order
            for param, value in zip(layer.parameters(),
                                    candidate_layer(emb, i)[0]):
                param.copy_(value)
        layers.append(layer)
    return emb, layers


@pytest.mark.parametrize('channels', [[4, 6, 4, 5, 6], [4, 4, 6, 6, 6]])
def test_candidate_embedding_equals_separate_linear_bn_layers(channels):
    """Batched per width, same maths as N separate Linear + BN1d layers:
    values, running statistics and gradients, groups in and out of
    network order."""
    torch.manual_seed(0)
    emb, layers = _embedding_and_separate_layers(channels)
    for step in range(3):  # training: batch statistics, running updates
        descs = [torch.randn(5, c, dtype=torch.float64, requires_grad=True)
                 for c in channels]
        out = emb(descs)
        assert out.shape == (5, len(channels), 8)
        copies = [d.detach().clone().requires_grad_() for d in descs]
        ref = [layer(x) for layer, x in zip(layers, copies)]
        for i in range(len(channels)):
            torch.testing.assert_close(out[:, i], ref[i])
        weights = torch.randn_like(out)
        emb.zero_grad()
        for layer in layers:
            layer.zero_grad()
        (out * weights).sum().backward()
        sum((r * weights[:, i]).sum() for i, r in enumerate(ref)).backward()
        for i, layer in enumerate(layers):
            torch.testing.assert_close(descs[i].grad, copies[i].grad)
            ours = candidate_layer(emb, i, grad=True)[0]
            for got, param in zip(ours, layer.parameters()):
                torch.testing.assert_close(got, param.grad)
    for i, layer in enumerate(layers):
        running = candidate_layer(emb, i)[1]
        torch.testing.assert_close(running[0], layer[1].running_mean)
        torch.testing.assert_close(running[1], layer[1].running_var)
    emb.eval()
    descs = [torch.randn(1, c, dtype=torch.float64) for c in channels]
    out = emb(descs)
    for i, layer in enumerate(layers):
        torch.testing.assert_close(out[:, i], layer.eval()(descs[i]))


def test_candidate_embedding_init():
    torch.manual_seed(0)
    emb = CandidateEmbedding([64] * 4, 128)
    weight = emb.linears[0].weight
    bound = 1 / math.sqrt(64)  # nn.Linear's default init
    assert weight.shape == (4 * 128, 64, 1)
    assert weight.abs().max() <= bound
    assert weight.std().item() == pytest.approx(bound / math.sqrt(3),
                                                rel=0.05)
    assert 'channels=[64, 64, 64, 64]' in repr(emb)


def test_linear_init_unknown_message():
    with pytest.raises(ValueError, match=r"linear_init='kaiming' is not "
                       r"supported; choose one of \('default', 'xavier'\) "
                       r'\(the `linear_init` key of AFDLoss\)'):
        AFDAttention([4], [4], linear_init='kaiming')
