import pytest
import torch
from conftest import Chain
from torch.utils.checkpoint import checkpoint

from afd_mm.models.recorder import FeatureRecorder


def test_records_in_network_order_and_detaches(chain):
    rec = FeatureRecorder(['layer2', 'layer1'])
    assert rec.attach(chain) == ['layer1', 'layer2']
    x = torch.randn(2, 3, 8, 8)
    with rec.record() as feats:
        out = chain(x)
    assert [tuple(f.shape) for f in feats] == [(2, 4, 8, 8), (2, 8, 8, 8)]
    assert torch.equal(feats[1], out)
    assert torch.equal(feats[0], chain.layer1(chain.stem(x)))
    rec.detach()
    with pytest.raises(RuntimeError, match='did not run in the forward'):
        with rec.record():
            chain(x)


def test_hooks_are_silent_outside_record(chain):
    rec = FeatureRecorder('layer*')
    rec.attach(chain)
    chain(torch.randn(1, 3, 4, 4))  # no error, nothing kept
    assert rec._records is None


def test_inplace_modification_is_detected():
    model = Chain(inplace_after=True)
    rec = FeatureRecorder('layer1')
    rec.attach(model)
    with pytest.raises(RuntimeError, match='modified in place'):
        with rec.record():
            model(torch.randn(1, 3, 4, 4))


def test_checkpointed_module_is_detected(chain):
    rec = FeatureRecorder('layer1')
    rec.attach(chain)
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    with pytest.raises(RuntimeError, match='with_cp=False'):
        with rec.record():
            checkpoint(chain.layer1, chain.stem(x), use_reentrant=True)


def test_recorded_features_carry_gradient(chain):
    rec = FeatureRecorder('layer1')
    rec.attach(chain)
    with rec.record() as feats:
        chain(torch.randn(1, 3, 4, 4))
    feats[0].sum().backward()
    assert chain.stem.weight.grad is not None


def test_mmpretrain_resnet_blocks():
    from mmpretrain.models import ResNet
    net = ResNet(depth=18)
    net.eval()  # BaseBackbone.train() returns None
    rec = FeatureRecorder('layer*.*')
    assert len(rec.attach(net)) == 8
    with rec.record() as feats:
        net(torch.randn(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 64, 128, 128, 256, 256,
                                           512, 512]


def test_transform_replaces_each_output_as_it_is_produced(chain):
    kept = []

    def transform(h):
        kept.append(h.shape)
        return h.sum(dim=(2, 3))

    rec = FeatureRecorder('layer*', transform=transform)
    rec.attach(chain)
    x = torch.randn(2, 3, 8, 8)
    with rec.record() as feats:
        chain(x)
        # applied in the hook, as each module returns
        assert len(kept) == 2 and feats == []
    h1 = chain.layer1(chain.stem(x))
    assert [tuple(f.shape) for f in feats] == [(2, 4), (2, 8)]
    assert torch.allclose(feats[0], h1.sum(dim=(2, 3)))
    with rec.record(raw=True) as feats:  # the outputs, transform kept
        chain(x)
    assert feats[0].dim() == 4 and rec.transform is transform
    with rec.record() as feats:
        chain(x)
    assert feats[0].dim() == 2
