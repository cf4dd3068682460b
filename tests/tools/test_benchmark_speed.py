"""tools/benchmark_speed.py runs end to end (tiny sizes; no timing checks)."""
import os.path as osp
import re
import sys

import pytest
from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import benchmark_speed  # noqa: E402

NUM = r' ([\d.]+) \|'
ROW = re.compile(r'^\| (\S+) \|' + NUM * 4 + '$')  # method + 4 numbers


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
    assert rows['floor'][1] == 1.0 and rows['floor'][3] == 1.0
    for name, (ms, ratio, mib, mem_ratio) in rows.items():
        assert ms > 0 and ratio > 0 and mib > 0 and mem_ratio > 0, name
    assert 'r56_r20, batch 2' in table and 'CPU' in table


def test_memory_of_each_method_in_its_own_process():
    results, table = benchmark_speed.main(TINY + ['--methods', 'kd',
                                                  '--mem-procs', '1'])
    rows = _rows(table)
    assert list(rows) == ['floor', 'kd']
    assert all(mib > 1 for _, _, mib, _ in rows.values())


def test_methods_option_keeps_floor_first_and_rejects_unknown():
    args = benchmark_speed.parse_args(['--methods', 'at,afd', '--device',
                                       'cpu'])
    assert args.methods == ['floor', 'afd', 'at']
    with pytest.raises(SystemExit):
        benchmark_speed.parse_args(['--methods', 'afd,fitnets'])
