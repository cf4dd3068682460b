"""Detection with the toolbox's own launcher: a 2-process
``tools/dist_train.sh`` run (CPU, gloo) of the tiny AFD Faster R-CNN on
the COCO fixture, validated with CocoMetric across both ranks."""
import os
import os.path as osp
import socket
import subprocess
import sys

import torch
from coco_fixture import write_coco
from conftest import REPO, require_mmdet

require_mmdet()

TINY = osp.join(REPO, 'tests', 'data', 'afd_tiny_coco.py')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_processes_train_and_validate(tmp_path):
    data = write_coco(str(tmp_path / 'coco'))
    work = tmp_path / 'work'
    tests = osp.join(REPO, 'tests')
    env = dict(os.environ, OMP_NUM_THREADS='1', AFD_TEST_DATA=data,
               PORT=str(_free_port()), PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(
                   [tests, REPO, os.environ.get('PYTHONPATH', '')]))
    run = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), TINY, '2',
         '--work-dir', str(work), '--cfg-options', 'train_cfg.max_epochs=1'],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    state = torch.load(work / 'epoch_1.pth', map_location='cpu',
                       weights_only=True)
    assert state['meta']['iter'] == 1  # 4 images, 2 ranks x batch 2
    assert any(k.startswith('student.neck.') for k in state['state_dict'])
    logs = list(work.glob('*/*.log'))
    assert logs and any('coco/bbox_mAP' in p.read_text() for p in logs)
