"""tools/benchmark_speed.py runs end to end (tiny sizes; no timing checks)."""
import os.path as osp
import re
import sys

import pytest
import torch
from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import benchmark_speed  # noqa: E402

NUM = r' ([\d.]+) \|'
ROW = re.compile(r'^\| (\S+) \|' + NUM * 9 + '$')  # method + 9 numbers

TINY = ['--pair', 'r56_r20', '--batch', '2', '--iters', '2', '--warmup',
        '1', '--device', 'cpu', '--threads', '1']


def _rows(table):
    return {m.group(1): [float(x) for x in m.groups()[1:]]
            for m in map(ROW.match, table.splitlines()) if m}


def test_table_has_a_numeric_row_per_eager_method():
    eager = [m for m in benchmark_speed.METHODS if m != 'afd_compiled']
    results, table = benchmark_speed.main(
        TINY + ['--methods', ','.join(eager)])
    rows = _rows(table)
    assert list(rows) == eager == list(results)
    assert rows['floor'][1:8:2] == [1.0, 1.0, 1.0, 1.0]
    for name, values in rows.items():
        assert all(v > 0 for v in values[:8]), name
    # tensor bytes and op counts are deterministic: AFD's meta-network
    # state alone puts it above the floor, and KD keeps less than AFD;
    # AFD dispatches more ops than the floor and than KD
    peak = {m: v[2] for m, v in rows.items()}
    assert peak['afd'] > peak['floor'] and peak['kd'] < peak['afd']
    ops = {m: v[4] for m, v in rows.items()}
    assert ops['afd'] > ops['kd'] > ops['floor']
    kernels = {m: v[6] for m, v in rows.items()}
    assert all(0 < kernels[m] < ops[m] for m in rows)
    assert kernels['afd'] > kernels['kd'] > kernels['floor']
    assert 'r56_r20, batch 2' in table and 'CPU' in table


def test_methods_option_keeps_floor_first_and_rejects_unknown():
    args = benchmark_speed.parse_args(['--methods', 'at,afd', '--device',
                                       'cpu'])
    assert args.methods == ['floor', 'afd', 'at']
    with pytest.raises(SystemExit):
        benchmark_speed.parse_args(['--methods', 'afd,fitnets'])


def test_afd_compiled_sets_the_distiller_compile_key():
    cfg = benchmark_speed.model_config('r56_r20', 'afd_compiled', 0.05,
                                       {'mode': 'reduce-overhead'})
    assert cfg.compile == {'mode': 'reduce-overhead'}
    assert benchmark_speed.model_config('r56_r20', 'afd_compiled').compile
    assert not benchmark_speed.model_config('r56_r20', 'afd').get(
        'compile', False)


def test_tensor_growth_is_the_peak_of_allocated_bytes():
    weight = torch.ones(2000)  # kept between steps, like a parameter

    def run():
        weight.view(20, 100).t()  # views of it: no new bytes
        a = torch.ones(1000)  # 4000 B
        b = a * 2  # 4000 B more: peak 8000
        del a
        b.view(10, 100).add_(1)  # a view and an in-place op: no new bytes
        c = torch.ones(500)  # 2000 B: 6000 live
        return b, c

    # + a few bytes of the scalar 2 wrapped as a tensor
    assert 8000 <= benchmark_speed.tensor_growth(run, 'cpu') < 8100


def test_op_counter_counts_dispatched_ops_and_of_them_kernels():
    x = torch.ones(3)
    # add, the in-place mul_ (it writes), sum: kernels; view, t: views
    assert benchmark_speed.ops_per_step(
        lambda: (x + 1).mul_(2).view(1, 3).t().sum()) == (5, 3)


def test_detection_pair_measures_afd_and_cwd_against_the_floor(monkeypatch):
    from conftest import require_mmdet
    require_mmdet()
    pair = dict(benchmark_speed.DET_PAIRS['frcnn_r101_r50'], size=64)
    monkeypatch.setitem(benchmark_speed.DET_PAIRS, 'frcnn_r101_r50', pair)
    results, table = benchmark_speed.main(
        ['--pair', 'frcnn_r101_r50', '--batch', '2', '--iters', '1',
         '--warmup', '0', '--device', 'cpu', '--threads', '1'])
    rows = _rows(table)
    assert list(rows) == ['floor', 'afd', 'cwd'] == list(results)
    ops = {m: v[4] for m, v in rows.items()}
    assert ops['afd'] > ops['floor'] and ops['cwd'] > ops['floor']
