import copy
import math

import pytest
import torch
from mmpretrain.structures import DataSample

from afd_mm.models.losses.crd_loss import (
    CRDLoss,
    contrast_scores,
    momentum_update,
    nce_loss,
)
from afd_mm.registry import MODELS

N, D, K = 10, 4, 3


def samples(indices):
    out = []
    for label, idx in enumerate(indices):
        sample = DataSample().set_gt_label(label)
        sample.set_metainfo({'sample_idx': idx})
        out.append(sample)
    return out


def small_loss(**kwargs):
    cfg = dict(teacher_shapes=[(6, 2, 2)], student_shapes=[(5,)],
               num_data=N, feat_dim=D, num_negatives=K)
    cfg.update(kwargs)
    return CRDLoss(**cfg)


def slow_nce(probs, num_data):
    """Loop version of Eq. 18 with m = K negatives and P_n = 1 / N."""
    m_pn = (len(probs[0]) - 1) / num_data
    total = 0.0
    for row in probs:
        total += math.log(row[0] / (row[0] + m_pn + 1e-7))
        total += sum(math.log(m_pn / (p + m_pn + 1e-7)) for p in row[1:])
    return -total / len(probs)


def slow_crd(loss, mem_s, mem_t, s_emb, t_emb, cidx):
    """Loop version of both NCE terms with Z fixed from these scores."""
    def scores(memory, emb):
        return [[math.exp(float(memory[j] @ emb[b]) / loss.temperature)
                 for j in cidx[b].tolist()] for b in range(len(emb))]
    total = 0.0
    for out in (scores(mem_t, s_emb), scores(mem_s, t_emb)):
        flat = [v for row in out for v in row]
        z = sum(flat) / len(flat) * loss.num_data
        total += slow_nce([[v / z for v in row] for row in out],
                          loss.num_data)
    return total


def test_defaults_and_buffers():
    loss = MODELS.build(dict(type='afd_mm.CRDLoss', num_data=N,
                             teacher_shapes=[(8, 2, 2), (6,)],
                             student_shapes=[(5,)]))
    assert (loss.loss_weight, loss.num_negatives, loss.temperature,
            loss.momentum, loss.loss_name) == (0.8, 64, 0.07, 0.5,
                                               'loss_crd')
    assert loss.embed_s.weight.shape == (128, 5)
    assert loss.embed_t.weight.shape == (128, 6)
    state = loss.state_dict()
    assert state['memory_s'].shape == state['memory_t'].shape == (N, 128)
    assert state['norm_consts'].tolist() == [-1.0, -1.0]
    stdv = 1 / math.sqrt(128 / 3)
    assert loss.memory_s.abs().max() <= stdv
    assert torch.equal(loss.memory_s, small_loss(feat_dim=128).memory_s)


def test_momentum_update_by_hand():
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    momentum_update(memory, torch.tensor([0]), torch.tensor([[0.0, 1.0]]),
                    0.5)
    half = 1 / math.sqrt(2.0)  # normalise(0.5 * [1, 0] + 0.5 * [0, 1])
    assert torch.allclose(memory[0], torch.tensor([half, half]))
    assert torch.equal(memory[1:], torch.tensor([[0.0, 1.0], [3.0, 4.0]]))


def test_scores_and_nce_match_loop_versions():
    torch.manual_seed(0)
    memory, anchor = torch.randn(N, D), torch.randn(2, D)
    cidx = torch.tensor([[1, 4, 7, 7], [2, 0, 9, 3]])
    out = contrast_scores(memory, cidx, anchor, 0.5)
    for b in range(2):
        for k in range(4):
            want = math.exp(float(memory[cidx[b, k]] @ anchor[b]) / 0.5)
            assert out[b, k].item() == pytest.approx(want, rel=1e-5)
    probs = torch.rand(2, 4)
    assert nce_loss(probs, N).item() == pytest.approx(
        slow_nce(probs.tolist(), N), rel=1e-5)


def test_forward_matches_loop_version_and_updates_memory():
    torch.manual_seed(0)
    loss = small_loss(loss_weight=2.0)
    mem_s, mem_t = loss.memory_s.clone(), loss.memory_t.clone()
    generator = copy.deepcopy(loss._generator)
    s, t = torch.randn(2, 5), torch.randn(2, 6, 2, 2)
    out = loss([t], [s], samples([3, 7]))
    neg = torch.randint(N, (2, K), generator=generator)
    cidx = torch.cat([torch.tensor([[3], [7]]), neg], 1)
    with torch.no_grad():
        s_emb = torch.nn.functional.normalize(loss.embed_s(s))
        t_emb = torch.nn.functional.normalize(
            loss.embed_t(t.mean(dim=(2, 3))))
    expected = 2.0 * slow_crd(loss, mem_s, mem_t, s_emb, t_emb, cidx)
    assert out.item() == pytest.approx(expected, rel=1e-4)
    assert (loss.norm_consts > 0).all()
    for memory, before, emb in ((loss.memory_s, mem_s, s_emb),
                                (loss.memory_t, mem_t, t_emb)):
        for row, idx in enumerate([3, 7]):
            want = torch.nn.functional.normalize(
                0.5 * before[idx] + 0.5 * emb[row], dim=0)
            assert torch.allclose(memory[idx], want, atol=1e-6)
        keep = [i for i in range(N) if i not in (3, 7)]
        assert torch.equal(memory[keep], before[keep])


def test_norm_consts_fixed_after_first_call_and_no_update_in_eval():
    torch.manual_seed(0)
    loss = small_loss()
    loss([torch.randn(2, 6, 2, 2)], [torch.randn(2, 5)], samples([0, 1]))
    z = loss.norm_consts.clone()
    loss.eval()
    mem_s = loss.memory_s.clone()
    loss([torch.randn(2, 6, 2, 2)], [torch.randn(2, 5)], samples([0, 1]))
    assert torch.equal(loss.norm_consts, z)
    assert torch.equal(loss.memory_s, mem_s)


def test_state_dict_round_trip():
    torch.manual_seed(0)
    loss = small_loss()
    loss([torch.randn(2, 6, 2, 2)], [torch.randn(2, 5)], samples([4, 5]))
    other = small_loss(seed=1)
    other.load_state_dict(loss.state_dict())
    assert torch.equal(other.memory_t, loss.memory_t)
    assert torch.equal(other.norm_consts, loss.norm_consts)


def test_gradient_reaches_student_and_heads_not_teacher():
    torch.manual_seed(0)
    loss = small_loss()
    s = torch.randn(3, 5, requires_grad=True)
    t = torch.randn(3, 6, 2, 2, requires_grad=True)
    loss([t], [s], samples([0, 1, 2])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None
    for name, param in loss.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_num_data_from_the_training_set():
    loss = CRDLoss([(6,)], [(5,)], feat_dim=4)
    feats = ([torch.randn(2, 6)], [torch.randn(2, 5)])
    with pytest.raises(ValueError, match='TrainSetSizeHook'):
        loss(*feats, samples([0, 1]))
    loss.set_num_data(7)
    assert loss.memory_s.shape == loss.memory_t.shape == (7, 4)
    assert torch.isfinite(loss(*feats, samples([0, 6])))
    with pytest.raises(ValueError, match=r'num_data=7 but the training set '
                       'has 9 images: drop `num_data`'):
        loss.set_num_data(9)
    fresh = CRDLoss([(6,)], [(5,)], feat_dim=4)
    fresh.load_state_dict(loss.state_dict())  # a checkpoint sizes it
    assert fresh.num_data == 7 and torch.equal(fresh.memory_t, loss.memory_t)


def test_train_set_size_hook_sizes_crd_banks():
    from types import SimpleNamespace

    from afd_mm.hooks import TrainSetSizeHook
    model = SimpleNamespace(distill_loss=CRDLoss([(6,)], [(5,)]))
    runner = SimpleNamespace(model=model, train_dataloader=SimpleNamespace(
        dataset=list(range(11))))
    TrainSetSizeHook().before_run(runner)
    assert model.distill_loss.num_data == 11


@pytest.mark.parametrize('key,value', [
    ('num_data', 5.0), ('num_data', True), ('feat_dim', 0),
    ('num_negatives', -1)])
def test_positive_ints(key, value):
    with pytest.raises(ValueError, match=rf'`{key}` to be a positive int'):
        small_loss(**{key: value})


def test_bad_temperature_and_momentum():
    with pytest.raises(ValueError, match='`temperature` > 0'):
        small_loss(temperature=0.0)
    with pytest.raises(ValueError, match=r'`momentum` in \[0, 1\)'):
        small_loss(momentum=1.0)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"last teacher candidate.*"
                       r"teacher_recorder's `patterns`"):
        small_loss(teacher_shapes=[(6, 2)])
    with pytest.raises(ValueError, match='got no candidate'):
        small_loss(student_shapes=[])


def test_missing_or_bad_sample_idx():
    loss = small_loss()
    feats = ([torch.randn(2, 6, 2, 2)], [torch.randn(2, 5)])
    with pytest.raises(ValueError, match='got None'):
        loss(*feats, None)
    bare = [DataSample().set_gt_label(0), DataSample().set_gt_label(1)]
    with pytest.raises(ValueError, match=r'data_samples\[0\] has no '
                       '`sample_idx`'):
        loss(*feats, bare)
    with pytest.raises(ValueError, match=r'sample_idx 10 is out of range '
                       r'for num_data=10: set `num_data`'):
        loss(*feats, samples([0, N]))
