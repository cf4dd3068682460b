import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_classifier
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

from afd_mm.models.losses.l2t_loss import (
    L2TLoss,
    adam_step,
    matching_loss,
    pair_distance,
    sgd_step,
)
from afd_mm.models.recorder import FeatureRecorder
from afd_mm.registry import MODELS

T_SHAPES = [(4, 8, 8), (6, 2, 2)]
S_SHAPES = [(16, 8, 8), (32, 4, 4), (64, 2, 2)]  # CIFAR ResNet-8 on 8x8


def slow_matching(dists, whats, wheres):
    """Loop version of L_wfm: sum_p mean_b lam[b] * sum_c w[b, c] D[b, c]."""
    total = 0.0
    for d, w, lam in zip(dists, whats, wheres):
        batch, channels = d.shape
        for b in range(batch):
            inner = sum(w[b, c].item() * d[b, c].item()
                        for c in range(channels))
            total += lam[b].item() * inner / batch
    return total


def student_setup(dtype=torch.float32, seed=0):
    """A CIFAR ResNet-8 student on 8x8 inputs, its recorder, a batch."""
    torch.manual_seed(seed)
    student = MODELS.build(tiny_classifier(depth=8, num_classes=10))
    student = student.to(dtype).train()
    recorder = FeatureRecorder('backbone.layer*.*')
    recorder.attach(student)
    inputs = torch.randn(4, 3, 8, 8, dtype=dtype)
    samples = [DataSample().set_gt_label(i % 10) for i in range(4)]
    teacher = [torch.randn(4, *shape, dtype=dtype) for shape in T_SHAPES]
    return student, recorder, inputs, samples, teacher


def student_feats(student, recorder, inputs):
    with recorder.record() as feats:
        student(inputs, mode='tensor')
    return feats


def test_registered_with_release_defaults():
    loss = MODELS.build(dict(type='afd_mm.L2TLoss', teacher_shapes=T_SHAPES,
                             student_shapes=S_SHAPES))
    assert loss.loss_name == 'loss_l2t' and loss.needs_student
    assert loss.loss_weight == 0.5 and loss.inner_steps == 2
    assert (loss.meta_lr, loss.meta_weight_decay) == (1e-4, 1e-4)
    assert loss.pairs == [(t, s) for t in range(2) for s in range(3)]
    assert loss.regressors[4].weight.shape == (6, 32, 1, 1)
    assert loss.regressors[4].bias is not None
    assert loss.what[4].weight.shape == (6, 6)
    assert torch.count_nonzero(loss.what[4].weight) == 0
    assert torch.equal(loss.where[4].bias, torch.ones(1))
    assert not any(p.requires_grad for p in loss.what.parameters())
    assert not any(p.requires_grad for p in loss.where.parameters())
    assert all(p.requires_grad for p in loss.regressors.parameters())


def test_explicit_pairs():
    loss = L2TLoss(T_SHAPES, S_SHAPES, pairs=[(1, 2), [0, 0]])
    assert loss.pairs == [(1, 2), (0, 0)] and len(loss.regressors) == 2


def test_pair_distance_same_size():
    t = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    s = torch.zeros(1, 1, 2, 2)
    assert pair_distance(t, s).item() == pytest.approx((1 + 4 + 9 + 16) / 4)


def test_pair_distance_resizes_teacher_bilinearly():
    # halving with align_corners=False averages each 2x2 block
    t = torch.arange(16.0).view(1, 1, 4, 4)
    s = torch.zeros(1, 1, 2, 2)
    blocks = [2.5, 4.5, 10.5, 12.5]
    expected = sum(v * v for v in blocks) / 4
    assert pair_distance(t, s).item() == pytest.approx(expected)
    # doubling a constant map keeps it constant
    up = pair_distance(torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 4, 4))
    assert up.item() == pytest.approx(9.0)


def test_matching_loss_matches_loop():
    torch.manual_seed(0)
    dists = [torch.rand(3, 4), torch.rand(3, 2)]
    whats = [torch.softmax(torch.randn(3, 4), 1),
             torch.softmax(torch.randn(3, 2), 1)]
    wheres = [torch.rand(3), torch.rand(3)]
    assert matching_loss(dists, whats, wheres).item() == pytest.approx(
        slow_matching(dists, whats, wheres), rel=1e-6)


def test_meta_weights_at_init_and_relu6():
    loss = L2TLoss([(3, 2, 2)], [(3, 2, 2)])
    with torch.no_grad():
        loss.where[0].weight.zero_()
    t = [torch.randn(5, 3, 2, 2)]
    whats, wheres = loss.meta_weights(t, loss._meta_params())
    assert torch.allclose(whats[0], torch.full((5, 3), 1 / 3))
    assert torch.equal(wheres[0], torch.ones(5))
    for bias, lam in ((7.0, 6.0), (-1.0, 0.0), (2.5, 2.5)):
        with torch.no_grad():
            loss.where[0].bias.fill_(bias)
        assert torch.equal(loss.meta_weights(t, loss._meta_params())[1][0],
                           torch.full((5, ), lam))


def test_hand_value_with_identity_regressors():
    shapes = [(2, 2, 2), (2, 2, 2)]
    loss = L2TLoss(shapes, shapes[:1], loss_weight=3.0).eval()
    with torch.no_grad():
        for conv in loss.regressors:
            conv.weight.copy_(torch.eye(2)[:, :, None, None])
            conv.bias.zero_()
        for lin, bias in zip(loss.where, (2.0, 0.5)):
            lin.weight.zero_()
            lin.bias.fill_(bias)
    torch.manual_seed(1)
    t = [torch.randn(2, 2, 2, 2), torch.randn(2, 2, 2, 2)]
    s = [torch.randn(2, 2, 2, 2)]
    # uniform "what" (1 / C), lambda = bias: lw * sum_p bias_p * mse_p
    expected = 3.0 * (2.0 * F.mse_loss(s[0], t[0]).item()
                      + 0.5 * F.mse_loss(s[0], t[1]).item())
    assert loss(t, s).item() == pytest.approx(expected, rel=1e-5)


def test_sgd_step_matches_torch_sgd():
    torch.manual_seed(0)
    p = torch.randn(3, requires_grad=True)
    q = torch.randn(2, requires_grad=True)  # no gradient: decay only
    opt = torch.optim.SGD([p, q], lr=0.1, momentum=0.9, weight_decay=0.01)
    params = {'p': p.detach().clone(), 'q': q.detach().clone()}
    velocity = {}
    for _ in range(3):
        g = torch.randn(3)
        opt.zero_grad()
        p.grad, q.grad = g.clone(), torch.zeros(2)
        opt.step()
        params, velocity = sgd_step(params, {'p': g, 'q': None}, velocity,
                                    0.1, 0.9, 0.01)
    assert torch.allclose(params['p'], p.detach(), atol=1e-6)
    assert torch.allclose(params['q'], q.detach(), atol=1e-6)


def test_adam_step_matches_torch_adam():
    torch.manual_seed(0)
    p = torch.randn(4, requires_grad=True)
    mine = p.detach().clone()
    avg, avg_sq = torch.zeros(4), torch.zeros(4)
    opt = torch.optim.Adam([p], lr=1e-2, weight_decay=1e-3)
    for step in range(1, 4):
        g = torch.randn(4)
        p.grad = g.clone()
        opt.step()
        adam_step([mine], [g], [avg], [avg_sq], step, 1e-2, 1e-3)
    assert torch.allclose(mine, p.detach(), atol=1e-7)


def test_meta_gradient_matches_finite_differences():
    student, recorder, inputs, samples, teacher = student_setup(torch.double)
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.1).double()
    labels = torch.cat([s.gt_label for s in samples])
    with torch.no_grad():  # non-trivial "what" weights
        for lin in loss.what:
            lin.weight.normal_(0, 0.5)
    meta = {n: p.detach().clone().requires_grad_()
            for n, p in loss._meta_params().items()}
    args = (teacher, labels, student, inputs, recorder, 0.1)
    grads = torch.autograd.grad(loss.lookahead_ce(meta, *args),
                                list(meta.values()))
    grads = dict(zip(meta, grads))
    eps = 1e-6
    for name, index in (('where.0.bias', (0, )), ('where.4.weight', (0, 3)),
                        ('what.1.weight', (2, 1)), ('what.5.bias', (4, ))):
        values = []
        for sign in (1, -1):
            shifted = {n: p.detach().clone() for n, p in meta.items()}
            shifted[name][index] += sign * eps
            values.append(loss.lookahead_ce(shifted, *args).item())
        numeric = (values[0] - values[1]) / (2 * eps)
        assert grads[name][index].item() == pytest.approx(
            numeric, rel=1e-4, abs=1e-9), name
    assert grads['where.0.bias'].abs().item() > 0


def call_loss(loss, student, recorder, inputs, samples, teacher):
    return loss(teacher, student_feats(student, recorder, inputs), samples,
                student=student, inputs=inputs, student_recorder=recorder)


def test_training_forward_updates_meta_only():
    student, recorder, inputs, samples, teacher = student_setup()
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.05)
    with torch.no_grad():
        s_feats = student_feats(student, recorder, inputs)
    state = {k: v.clone() for k, v in student.state_dict().items()}
    meta = {k: v.clone() for k, v in loss._meta_params().items()}
    regs = {k: v.clone() for k, v in loss.regressors.state_dict().items()}
    loss(teacher, s_feats, samples, student=student, inputs=inputs,
         student_recorder=recorder)
    # student weights AND BN statistics untouched by the look-ahead
    assert all(torch.equal(state[k], v)
               for k, v in student.state_dict().items())
    assert all(torch.equal(regs[k], v)
               for k, v in loss.regressors.state_dict().items())
    moved = {k: (v - meta[k]).abs().max().item()
             for k, v in loss._meta_params().items()}
    assert all(m > 0 for m in moved.values()), moved
    # Adam's first step moves every weight by about lr
    assert max(moved.values()) == pytest.approx(1e-4, rel=1e-2)
    assert int(loss.meta_step) == 1 and loss.exp_avg_where_0_bias.abs() > 0


def test_gradients_of_returned_loss():
    student, recorder, inputs, samples, teacher = student_setup()
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.05)
    teacher = [t.requires_grad_() for t in teacher]
    out = call_loss(loss, student, recorder, inputs, samples, teacher)
    student.zero_grad()
    out.backward()
    for name, param in student.backbone.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    for name, param in loss.regressors.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in loss._meta_params().values())
    assert all(t.grad is None for t in teacher)


def test_no_meta_update_in_eval_or_without_grad():
    student, recorder, inputs, samples, teacher = student_setup()
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.05)
    meta = {k: v.clone() for k, v in loss._meta_params().items()}
    feats = student_feats(student, recorder, inputs)
    loss.eval()(teacher, feats, samples)  # no student needed
    with torch.no_grad():
        loss.train()(teacher, feats, samples)
    assert all(torch.equal(meta[k], v)
               for k, v in loss._meta_params().items())
    assert int(loss.meta_step) == 0


def test_meta_period():
    student, recorder, inputs, samples, teacher = student_setup()
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.05, meta_period=2,
                   inner_steps=1)
    steps = []
    for _ in range(3):
        call_loss(loss, student, recorder, inputs, samples, teacher)
        steps.append(int(loss.meta_step))
    assert steps == [1, 1, 2]


def test_adam_state_round_trips_through_state_dict():
    student, recorder, inputs, samples, teacher = student_setup()
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.05, inner_steps=1)
    call_loss(loss, student, recorder, inputs, samples, teacher)
    state = loss.state_dict()
    assert 'exp_avg_sq_what_3_weight' in state and 'meta_step' in state
    other = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.05, inner_steps=1)
    other.load_state_dict(state)
    for one in (loss, other):
        call_loss(one, student, recorder, inputs, samples, teacher)
    for key, value in loss.state_dict().items():
        assert torch.allclose(value, other.state_dict()[key]), key


def test_inner_lr_from_message_hub():
    hub = MessageHub.get_instance('test_l2t_lr')  # becomes current
    loss = L2TLoss(T_SHAPES, S_SHAPES)
    with pytest.raises(ValueError, match=r'set `inner_lr` in the L2TLoss'):
        loss._inner_lr()
    hub.update_scalar('train/lr', 0.0125)
    assert loss._inner_lr() == 0.0125
    assert L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.3)._inner_lr() == 0.3


def test_training_forward_without_student_explains_the_hook():
    student, recorder, inputs, samples, teacher = student_setup()
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=0.05)
    feats = student_feats(student, recorder, inputs)
    with pytest.raises(RuntimeError,
                       match=r"no \['student', 'inputs', 'student_recorder'"
                       r"\].*needs_student = True"):
        loss(teacher, feats, samples)


def test_rejects_wrong_feats():
    loss = L2TLoss(T_SHAPES, S_SHAPES).eval()
    t = [torch.zeros(1, *s) for s in T_SHAPES]
    s = [torch.zeros(1, *s) for s in S_SHAPES]
    with pytest.raises(ValueError, match=r'built for student candidates '
                       r'with channels \[16, 32, 64\]'):
        loss(t, s[:2])


@pytest.mark.parametrize('pairs', [[(2, 0)], [(0, 3)], [(0, )], []])
def test_rejects_bad_pairs(pairs):
    with pytest.raises(ValueError, match=r'`pairs`'):
        L2TLoss(T_SHAPES, S_SHAPES, pairs=pairs)


def test_rejects_vectors_and_empty():
    with pytest.raises(ValueError, match=r'student candidate 1 has shape '
                       r'\(8,\); change the patterns'):
        L2TLoss(T_SHAPES, [(4, 2, 2), (8, )])
    with pytest.raises(ValueError, match=r'got 0 teacher candidates'):
        L2TLoss([], S_SHAPES)


@pytest.mark.parametrize('key', ['inner_steps', 'meta_period'])
@pytest.mark.parametrize('value', [0, 1.5, True])
def test_rejects_bad_counts(key, value):
    with pytest.raises(ValueError, match=rf'`{key}` to be an int >= 1'):
        L2TLoss(T_SHAPES, S_SHAPES, **{key: value})


def test_diverged_lookahead_stops_with_a_clear_error():
    student, recorder, inputs, samples, teacher = student_setup()
    loss = L2TLoss(T_SHAPES, S_SHAPES, inner_lr=1e30, inner_steps=1)
    meta = {k: v.clone() for k, v in loss._meta_params().items()}
    with pytest.raises(FloatingPointError,
                       match=r'meta-gradient is not finite, the look-ahead '
                       r'\(1 SGD steps at lr 1e\+30\) diverged'):
        call_loss(loss, student, recorder, inputs, samples, teacher)
    assert all(torch.equal(meta[k], v)
               for k, v in loss._meta_params().items())
    assert int(loss.meta_step) == 0
