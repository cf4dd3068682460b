"""tools/benchmark_speed.py runs end to end (tiny sizes; no timing checks)."""
import os.path as osp
import re
import sys

import pytest
from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import benchmark_speed  # noqa: E402

NUM = r' ([\d.]+) \|'
ROW = re.compile(r'^\| (\S+) \|' + NUM * 6 + '$')  # method + 6 numbers


TINY = ['--pair', 'r56_r20', '--batch', '2', '--iters', '2', '--warmup',
        '1', '--mem-iters', '1', '--device', 'cpu', '--threads', '1']


def _rows(table):
    return {m.group(1): [float(x) for x in m.groups()[1:]]
            for m in map(ROW.match, table.splitlines()) if m}


def test_table_has_a_numeric_row_per_method():
    results, table = benchmark_speed.main(TINY + ['--mem-mode', 'inprocess'])
    rows = _rows(table)
    methods = [m for m in benchmark_speed.METHODS
               if m != 'l2t' or 'l2t' in results]
    assert list(rows) == methods == list(results)
    assert rows['floor'][1::2] == [1.0, 1.0, 1.0]
    for name, values in rows.items():
        assert all(v > 0 for v in values), name
    # tensor bytes are deterministic: AFD's meta-network state alone puts
    # it above the floor, and KD keeps no more tensors than AFD
    tensor = {m: v[4] for m, v in rows.items()}
    assert tensor['afd'] > tensor['floor']
    assert tensor['kd'] < tensor['afd']
    assert 'r56_r20, batch 2' in table and 'CPU' in table
    assert 'malloc keep' in table  # the timed steps run as tools/train.py


def test_memory_of_each_method_in_its_own_process():
    results, table = benchmark_speed.main(TINY + ['--methods', 'kd',
                                                  '--mem-procs', '1',
                                                  '--malloc', 'default'])
    rows = _rows(table)
    assert 'malloc default' in table
    assert list(rows) == ['floor', 'kd']
    assert all(v[2] > 1 and v[4] > 0 for v in rows.values())


def test_methods_option_keeps_floor_first_and_rejects_unknown():
    args = benchmark_speed.parse_args(['--methods', 'at,afd', '--device',
                                       'cpu'])
    assert args.methods == ['floor', 'afd', 'at']
    with pytest.raises(SystemExit):
        benchmark_speed.parse_args(['--methods', 'afd,fitnets'])


def test_live_tensor_bytes_is_the_peak_of_live_storages():
    import torch

    weight = torch.ones(2000)  # kept between steps, like a parameter

    def run():
        weight.view(20, 100).t()  # views of it: no new bytes
        a = torch.ones(1000)  # 4000 B
        b = a * 2  # 4000 B more: peak 8000
        del a
        b.view(10, 100).add_(1)  # a view and an in-place op: no new bytes
        c = torch.ones(500)  # 2000 B: 6000 live
        return b, c

    assert benchmark_speed.tensor_peak(run, 100) == 100 + 8000


def test_afd_torch_switches_the_kernel_off_and_restores_the_env(
        monkeypatch):
    from afd_mm.ops import KERNEL_ENV, kernel_available
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    with benchmark_speed._without_kernels():
        assert not kernel_available()
    assert KERNEL_ENV not in benchmark_speed.os.environ
    assert kernel_available()
    monkeypatch.setenv(KERNEL_ENV, '0')  # a user's setting stays as it was
    with benchmark_speed._without_kernels():
        pass
    assert benchmark_speed.os.environ[KERNEL_ENV] == '0'
