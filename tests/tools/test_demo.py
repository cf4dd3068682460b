"""tools/demo.py and tools/benchmark_accuracy.py end to end on a tiny
Fashion-MNIST fixture (gzipped IDX files, a few dozen images, 1 epoch)."""
import contextlib
import io
import json
import os
import os.path as osp
import sys

import pytest
from conftest import REPO

sys.path[:0] = [osp.join(REPO, 'tools'), osp.join(REPO, 'tests', 'datasets')]
import benchmark_accuracy  # noqa: E402
import demo  # noqa: E402
from test_fashion_mnist import write_fashion_mnist  # noqa: E402

TINY = ['--teacher-images', '24', '--teacher-epochs', '1',
        '--student-images', '16', '--student-epochs', '1']


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """The demo once: 24 (teacher) / 16 (student) of 40 training images,
    tested on 8 of the 12 test images; (data root, work dir, rows, out)."""
    tmp = tmp_path_factory.mktemp('demo')
    root = write_fashion_mnist(str(tmp / 'fmnist'), num_train=40,
                               num_test=12)
    work = str(tmp / 'work')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rows = demo.main(['--data-root', root, '--work-dir', work,
                          '--test-images', '8'] + TINY)
    return root, work, rows, out.getvalue()


def test_demo_rows_and_heatmap_files(demo_run):
    _, work, rows, _ = demo_run
    assert [r['label'] for r in rows] == [
        'ResNet-20 teacher', 'ResNet-8 alone (CE)', 'ResNet-8 + KD',
        'ResNet-8 + AFD (+KD)']
    assert all(0 <= r['top1'] <= 100 for r in rows)
    maps = demo.heatmaps(osp.join(work, 'afd'))
    assert [osp.basename(p) for p in maps] == ['link_matrix_1.png',
                                               'links_strip.png']
    assert all(osp.getsize(p) > 0 for p in maps)
    assert osp.isfile(osp.join(work, 'afd', 'links', 'epoch_1.npy'))


def test_demo_prints_progress_table_and_heatmap_path(demo_run):
    _, work, _, out = demo_run
    assert '[1/4] teacher ResNet-20: 24 images x 1 epochs' in out
    assert '[teacher] epoch 1/1 iter 1/1' in out and 'ETA' in out
    assert '| model | train images | epochs | top-1 (%, 8 test images) ' \
        '| time |' in out
    for row in ('| ResNet-20 teacher | 24 | 1 | ',
                '| ResNet-8 alone (CE) | 16 | 1 | ',
                '| ResNet-8 + KD | 16 | 1 | ',
                '| ResNet-8 + AFD (+KD) | 16 | 1 | '):
        assert row in out
    strip = osp.join(work, 'afd', 'links', 'links_strip.png')
    assert 'AFD link heatmap (student rows x teacher columns): ' in out
    assert strip in out


def test_fast_flag_and_env(monkeypatch):
    assert demo.parse_args([]).sizes == demo.SIZES['default']
    assert demo.parse_args(['--fast']).sizes == demo.SIZES['fast']
    monkeypatch.setenv('FAST', '1')
    args = demo.parse_args(['--student-epochs', '7'])
    assert args.sizes == dict(demo.SIZES['fast'], student_epochs=7)
    assert args.work_dir == osp.join('work_dirs', 'demo_fast')
    monkeypatch.setenv('FAST', '0')
    assert not demo.parse_args([]).fast


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, 'apt_install', calls.append)
    with pytest.raises(SystemExit) as err:
        demo.ensure_data(str(tmp_path))
    msg = str(err.value)
    assert f'Fashion-MNIST files missing in {tmp_path}: ' \
        'train-images-idx3-ubyte.gz' in msg
    assert 'apt-get install dataset-fashion-mnist' in msg
    assert 'make demo' in msg
    assert calls == []  # not the Debian folder: nothing to install


def test_installs_the_debian_package_as_root(tmp_path, monkeypatch):
    monkeypatch.setattr(demo.fmnist, 'DEBIAN_ROOT', str(tmp_path))
    monkeypatch.setattr(demo.shutil, 'which', lambda name: '/usr/bin/' + name)
    monkeypatch.setattr(demo.os, 'geteuid', lambda: 0)
    monkeypatch.setattr(demo, 'apt_install', lambda package: (
        write_fashion_mnist(str(tmp_path), 4, 2), calls.append(package)))
    calls = []
    demo.ensure_data(str(tmp_path))
    assert calls == ['dataset-fashion-mnist']
    demo.ensure_data(str(tmp_path))  # present now: no second install
    assert calls == ['dataset-fashion-mnist']


def test_benchmark_tiny(demo_run, tmp_path, capsys):
    root, work, _, _ = demo_run
    teacher = osp.join(work, 'teacher', 'epoch_1.pth')
    results = benchmark_accuracy.main([
        '--tiny', '--data-root', root, '--work-dir', str(tmp_path / 'b'),
        '--teacher-ckpt', teacher, '--methods', 'alone', 'crd'])
    assert [r['seed'] for r in results['crd']] == [0, 1]
    out = capsys.readouterr().out
    assert 'students on 32 images x 1 epochs, seeds [0, 1], tested on 12 ' \
        'images' in out
    assert '| ResNet-8 student | top-1 (%) mean ± std | vs alone ' \
        '| seeds 0 / 1 | time per run |' in out
    assert '| alone (CE) | ' in out and '| CRD + KD | ' in out
    assert ' ± ' in out and 'Wall time' in out
    with open(tmp_path / 'b' / 'results.json') as f:
        saved = json.load(f)
    assert saved['seeds'] == [0, 1] and saved['num_test'] == 12
    assert len(saved['results']['alone']) == 2
    assert sorted(os.listdir(tmp_path / 'b' / 'crd')) == ['seed0', 'seed1']


def test_benchmark_tiny_new_methods(demo_run, tmp_path, capsys):
    """The combined AFD + DKD run (schedule by iteration) and KD with logit
    standardisation, one seed each; the other new configs build in
    tests/configs/test_configs.py."""
    root, work, _, _ = demo_run
    teacher = osp.join(work, 'teacher', 'epoch_1.pth')
    results = benchmark_accuracy.main([
        '--tiny', '--data-root', root, '--work-dir', str(tmp_path / 'b'),
        '--teacher-ckpt', teacher, '--methods', 'afd_dkd', 'kd_ls',
        '--seeds', '0'])
    assert [r['seed'] for r in results['afd_dkd']] == [0]
    out = capsys.readouterr().out
    assert '| AFD + DKD | ' in out and '| KD + logit stand. | ' in out
