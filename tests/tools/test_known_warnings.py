"""The tools silence three known third-party warnings; afd_mm itself does
not."""
import ast
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from conftest import REPO

PKG_RESOURCES = 'pkg_resources is deprecated'
MMCV_LITE = 'MultiScaleDeformableAttention'
# mmengine reloads pkg_resources at every is_installed() call
CALLS = ("from mmengine.utils import is_installed\n"
         "for name in ('mmpretrain', 'torch', 'mmcv'): is_installed(name)\n")
THIRD_PARTY = ('mmengine', 'mmcv', 'mmpretrain', 'afd_mm', 'torch', 'train',
               'test', 'demo')


def _stderr(code):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    env.update(PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    done = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    return done.stderr


BROADCAST = '`broadcast_buffers` is deprecated'
# mmengine's DDP wrapper as every multi-process run builds it
DDP = ("import torch, torch.distributed as dist\n"
       "from mmengine.model import MMDistributedDataParallel\n"
       "dist.init_process_group('gloo', store=dist.HashStore(), rank=0, "
       "world_size=1)\n"
       "MMDistributedDataParallel(torch.nn.Linear(2, 2), device_ids=None, "
       "broadcast_buffers=False)\n")


def _mmcv_has_ops():
    """mmcv built with its ops (make install-det) has no
    MultiScaleDeformableAttention warning to give; mmcv-lite has."""
    try:
        import mmcv.ops  # noqa: F401
    except ImportError:
        return False
    return True


def test_a_tool_prints_neither_warning_but_the_package_keeps_them():
    tool = _stderr("import sys; sys.path.insert(0, 'tools')\n"
                   'import train\n' + CALLS)
    assert PKG_RESOURCES not in tool and MMCV_LITE not in tool, tool
    package = _stderr('import afd_mm\n' + CALLS)  # no global filter
    assert PKG_RESOURCES in package
    assert (MMCV_LITE in package) != _mmcv_has_ops(), package


def test_a_tool_silences_ddps_broadcast_buffers_deprecation():
    tool = _stderr("import sys; sys.path.insert(0, 'tools')\n"
                   'import train\n' + DDP)
    assert BROADCAST not in tool, tool
    assert BROADCAST in _stderr('import afd_mm\n' + DDP)


def _first_line(tree, predicate):
    return min((node.lineno for node in tree.body if predicate(node)),
               default=None)


def _imports_third_party(node):
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        names = [node.module or '']
    else:
        return False
    return any(n.split('.')[0] in THIRD_PARTY for n in names)


def _calls_filter(node):
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
        and getattr(node.value.func, 'id', '') == 'ignore_known_warnings'


TOOLS = sorted(
    p for p in glob.glob(osp.join(REPO, 'tools', '*.py'))
    if osp.basename(p) != 'known_warnings.py')


@pytest.mark.parametrize('path', TOOLS, ids=osp.basename)
def test_every_tool_filters_before_importing_third_party(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    call = _first_line(tree, _calls_filter)
    first = _first_line(tree, _imports_third_party)
    if first is None and call is None:  # e.g. install_det.py: no stack yet
        return
    assert call is not None, f'{path} never calls ignore_known_warnings()'
    assert first is None or call < first, path
