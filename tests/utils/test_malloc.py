"""Tests of afd_mm.utils.malloc: glibc keeps freed memory for reuse."""
import resource
import subprocess
import sys
import textwrap

import pytest

from afd_mm.utils import malloc
from afd_mm.utils.malloc import MALLOC_ENV, keep_freed_memory

glibc = pytest.mark.skipif(malloc._glibc() is None,
                           reason='needs glibc (mallopt)')


def test_opt_out_and_glibc_environment_are_respected(monkeypatch):
    calls = []
    monkeypatch.setattr(malloc, '_glibc', lambda: calls.append(1))
    assert keep_freed_memory({MALLOC_ENV: 'default'}) is False
    for key in ('MALLOC_TRIM_THRESHOLD_', 'MALLOC_MMAP_THRESHOLD_',
                'GLIBC_TUNABLES'):
        assert keep_freed_memory({key: '1'}) is False
    assert calls == []  # mallopt never reached


def test_unknown_mode_names_the_variable():
    with pytest.raises(ValueError, match=r'AFD_MM_MALLOC=.fast. is not '
                       r'understood: set it to "keep"'):
        keep_freed_memory({MALLOC_ENV: 'fast'})


def test_not_glibc_does_nothing(monkeypatch):
    monkeypatch.setattr(malloc, '_glibc', lambda: None)
    assert keep_freed_memory({}) is False


_STEPS = textwrap.dedent('''
    import resource, sys
    sys.path.insert(0, {repo!r})
    from afd_mm.utils.malloc import keep_freed_memory
    if sys.argv[1] == 'keep':
        assert keep_freed_memory({{}})
    def step():  # a forward's activations, freed in reverse order
        blocks = [bytearray(4 << 20) for _ in range(16)]
        while blocks:
            blocks.pop()
    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
''')


@glibc
def test_keep_stops_faulting_freed_memory_back_in():
    """Allocate and free 64 MiB per 'step', as a train step does: glibc's
    defaults give it back and fault it in again every step; kept, the
    later steps reuse it."""
    import os.path as osp
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    code = _STEPS.format(repo=repo)
    faults = {}
    for mode in ('default', 'keep'):
        out = subprocess.run([sys.executable, '-c', code, mode],
                             capture_output=True, text=True, check=True)
        faults[mode] = int(out.stdout.split()[-1])
    pages = 5 * 64 * 2**20 // resource.getpagesize()
    assert faults['default'] > pages / 2  # most pages faulted again
    assert faults['keep'] < pages / 20


@glibc
def test_set_thresholds_and_trim_heap_reach_glibc():
    # glibc's initial values of both thresholds
    assert malloc.set_thresholds(128 * 1024, 128 * 1024) is True
    assert isinstance(malloc.trim_heap(), bool)


def test_set_thresholds_elsewhere_is_a_no_op(monkeypatch):
    monkeypatch.setattr(malloc, '_glibc', lambda: None)
    assert malloc.set_thresholds(1, 1) is False
    assert malloc.trim_heap() is False
