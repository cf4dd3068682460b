"""RNG states of the resumable loops: through a weights_only checkpoint and
back, every generator draws what it drew before."""
import random

import numpy as np
import torch

from afd_mm.engine.loops import _AfterSkipping, get_rng_state, set_rng_state


def _draws():
    return (random.random(), float(np.random.rand()),
            float(torch.rand(())))


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    np.random.standard_normal()  # a cached Gaussian is part of the state
    torch.save(dict(meta=dict(rng_state=get_rng_state())),
               tmp_path / 'ckpt.pth')
    expected = _draws()
    state = torch.load(tmp_path / 'ckpt.pth', weights_only=True)
    _draws()  # the generators move on
    set_rng_state(state['meta']['rng_state'])
    assert _draws() == expected


def test_after_skipping_acts_once_after_the_skipped_items():
    calls = []
    it = _AfterSkipping(iter(range(5)), 2, lambda: calls.append('act'))
    seen = []
    for item in it:
        seen.append(item)
        calls.append(item)
    assert seen == [0, 1, 2, 3, 4]
    # after the 2nd item is taken (skipped), before the 3rd is loaded
    assert calls == [0, 'act', 1, 2, 3, 4]
