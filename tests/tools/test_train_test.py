"""End to end: tools/train.py on a tiny CIFAR-100 fixture, --resume from the
saved checkpoint, then tools/test.py reports top-1."""
import glob
import json
import os.path as osp
import sys

import pytest
import torch
import torch.distributed as torch_dist
from cifar_fixture import write_cifar100
from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import test as test_tool  # noqa: E402
import train as train_tool  # noqa: E402

TINY = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')


@pytest.fixture
def data(tmp_path, monkeypatch):
    root = write_cifar100(str(tmp_path / 'cifar100'), num_train=16,
                          num_test=8)
    monkeypatch.setenv('AFD_TEST_DATA', root)
    return root


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def test_train_resume_test(data, tmp_path):
    work = str(tmp_path / 'work')
    runner = train_tool.main([TINY, '--work-dir', work, '--cfg-options',
                              'train_cfg.max_epochs=1'])
    assert runner.iter == 4 and osp.isfile(osp.join(work, 'epoch_1.pth'))
    first = _state(osp.join(work, 'epoch_1.pth'))
    assert first['meta']['epoch'] == 1
    assert any(k.startswith('distill_loss.') for k in first['state_dict'])

    runner = train_tool.main([TINY, '--work-dir', work, '--resume',
                              '--cfg-options', 'train_cfg.max_epochs=2'])
    assert runner.epoch == 2 and runner.iter == 8  # continued, not restarted
    second = _state(osp.join(work, 'epoch_2.pth'))
    assert second['meta']['iter'] == 8
    changed = [k for k, v in second['state_dict'].items()
               if k.startswith('student.') and v.is_floating_point()
               and not torch.equal(v, first['state_dict'][k])]
    assert changed

    metrics = test_tool.main([TINY, osp.join(work, 'epoch_2.pth'),
                              '--work-dir', work,
                              '--out', osp.join(work, 'metrics.json')])
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0
    assert osp.isfile(osp.join(work, 'metrics.json'))


def test_resume_from_explicit_checkpoint(data, tmp_path):
    work = str(tmp_path / 'work')
    train_tool.main([TINY, '--work-dir', work, '--cfg-options',
                     'train_cfg.max_epochs=1'])
    ckpt = osp.join(work, 'epoch_1.pth')
    runner = train_tool.main([TINY, '--work-dir', str(tmp_path / 'other'),
                              '--resume', ckpt, '--cfg-options',
                              'train_cfg.max_epochs=2'])
    assert runner.iter == 8


def test_cli_flags_reach_the_config(tmp_path):
    args = train_tool.parse_args([TINY, '--amp', '--no-validate',
                                  '--local-rank', '0', '--cfg-options',
                                  'model.kd_weight=0.5'])
    from mmengine.config import Config
    cfg = train_tool.merge_args(Config.fromfile(TINY), args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.val_cfg is None and cfg.model.kd_weight == 0.5
    assert cfg.work_dir.endswith('afd_tiny_cifar')
    assert train_tool.parse_args([TINY, '--local_rank', '1']).local_rank == 1


def test_only_rank_0_writes_the_metrics_file(tmp_path):
    """Rank 0 writes first, rank 1 after it: a write by rank 1 would win."""
    out = tmp_path / 'metrics.json'
    torch.multiprocessing.spawn(_write_from_rank, args=(tmp_path, out),
                                nprocs=2)
    assert json.loads(out.read_text()) == {'rank': 0}


def _write_from_rank(rank, tmp_path, out):
    store = torch_dist.FileStore(str(tmp_path / 'store'), 2)
    torch_dist.init_process_group('gloo', store=store, rank=rank,
                                  world_size=2)
    if rank == 1:
        torch_dist.barrier()
    test_tool.write_metrics({'rank': rank}, str(out))
    if rank == 0:
        torch_dist.barrier()
    torch_dist.destroy_process_group()


def test_plain_student_checkpoint_and_no_teacher_file(data, tmp_path):
    """tools/test.py on the AFD config: a plain student checkpoint scores
    as the AFD checkpoint, and the teacher's weights file is not read."""
    work = str(tmp_path / 'work')
    train_tool.main([TINY, '--work-dir', work, '--cfg-options',
                     'train_cfg.max_epochs=1'])
    ckpt = osp.join(work, 'epoch_1.pth')
    missing = ['--cfg-options', f'model.teacher_ckpt={tmp_path}/none.pth']
    afd = test_tool.main([TINY, ckpt, '--work-dir', work, *missing])
    state = _state(ckpt)['state_dict']
    plain = str(tmp_path / 'student.pth')
    torch.save(dict(state_dict={k[len('student.'):]: v
                                for k, v in state.items()
                                if k.startswith('student.')}), plain)
    logs = str(tmp_path / 'logs')
    student = test_tool.main([TINY, plain, '--work-dir', logs, *missing])
    assert student['accuracy/top1'] == afd['accuracy/top1']
    log = ''.join(open(p).read() for p in glob.glob(
        osp.join(logs, '*', '*.log')))
    assert 'Plain student checkpoint recognised' in log
    assert 'missing keys' not in log


def test_resume_with_a_missing_path_is_an_error(tmp_path):
    missing = str(tmp_path / 'epoch_9.pth')
    args = train_tool.parse_args([TINY, '--resume', missing])
    from mmengine.config import Config
    with pytest.raises(FileNotFoundError) as err:
        train_tool.merge_args(Config.fromfile(TINY), args)
    assert str(err.value) == (
        f'--resume {missing}: no such file. Pass an existing checkpoint, or '
        '`--resume` alone to resume from the newest checkpoint of the work '
        'dir.')


def test_resume_with_nothing_to_resume_says_so_in_one_line(tmp_path):
    import logging

    from mmengine.config import Config
    from mmengine.logging import MMLogger
    work = str(tmp_path / 'empty')
    args = train_tool.parse_args([TINY, '--work-dir', work, '--resume'])
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_instance(f'nothing_{tmp_path.name}')  # 'current'
    logger.addHandler(handler)
    try:
        cfg = train_tool.merge_args(Config.fromfile(TINY), args)
    finally:
        logger.removeHandler(handler)
    assert lines == [f'--resume: no intact checkpoint in {work}; training '
                     'starts from scratch.']
    assert cfg.resume is False and cfg.load_from is None
