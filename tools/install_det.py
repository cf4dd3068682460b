"""Install what afd_mm needs for mmdet 3.x detectors, reproducibly.

mmdet 3.3.0 needs mmcv (>= 2.0, < 2.2) *with* its compiled ops; mmcv-lite
has none, and mmcv 2.1.0 is published only as a source archive whose
setup.py forces ``-std=c++14``/``-std=c++17`` while torch >= 2.10's headers
need C++20. This script:

1. downloads the pinned sdist (``MMCV_SDIST_URL``), checks its sha256;
2. patches a copy of its setup.py to ``-std=c++20``;
3. builds a wheel with ``MMCV_WITH_OPS=1 FORCE_CUDA=0`` (CPU ops; set
   ``FORCE_CUDA=1`` in the environment to build the CUDA ops too) and
   caches it under ``$AFD_MM_CACHE/wheels/<torch version>/`` (default
   ``~/.cache/afd_mm``), so a second install on the machine takes seconds;
4. installs that wheel and ``mmdet==3.3.0`` with its runtime dependencies
   (pycocotools, tqdm, terminaltables, shapely).

Usage: ``python tools/install_det.py`` (``make install-det`` runs it with the
project's venv). ``--check`` only verifies an existing install.
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

MMCV_VERSION = '2.1.0'
MMCV_SDIST_URL = (
    'https://files.pythonhosted.org/packages/a7/19/'
    'f97f0fd4d432113a232e75f965335be6b7bb6557ae9faf8051e9a012cadd/'
    'mmcv-2.1.0.tar.gz')
MMCV_SDIST_SHA256 = (
    'd387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f')
DET_REQUIREMENTS = ('mmdet==3.3.0', 'pycocotools', 'tqdm', 'terminaltables',
                    'shapely')
STD_FLAG = re.compile(r'-std=c\+\+1[147]')


def cache_dir():
    """Root of afd_mm's cache: ``$AFD_MM_CACHE`` or ``~/.cache/afd_mm``."""
    root = os.environ.get('AFD_MM_CACHE', '~/.cache/afd_mm')
    return Path(root).expanduser()


def wheel_dir():
    """Wheels are keyed by torch version: mmcv's ops link against torch."""
    import torch
    tag = torch.__version__.replace('+', '_')
    return cache_dir() / 'wheels' / f'torch-{tag}'


def sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist():
    """The verified sdist path, downloaded once into the cache."""
    path = cache_dir() / 'sdist' / f'mmcv-{MMCV_VERSION}.tar.gz'
    if not path.exists() or sha256(path) != MMCV_SDIST_SHA256:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix('.part')
        with urllib.request.urlopen(MMCV_SDIST_URL, timeout=60) as r, \
                open(part, 'wb') as f:
            shutil.copyfileobj(r, f)
        got = sha256(part)
        if got != MMCV_SDIST_SHA256:
            part.unlink()
            raise RuntimeError(
                f'{MMCV_SDIST_URL} has sha256 {got}, expected '
                f'{MMCV_SDIST_SHA256}; refusing to build it')
        part.replace(path)
    return path


def patch_std(setup_py):
    """Raise every ``-std=c++1x`` flag in mmcv's setup.py to C++20."""
    text = setup_py.read_text()
    patched, n = STD_FLAG.subn('-std=c++20', text)
    if n == 0:
        raise RuntimeError(f'no -std=c++1x flag found in {setup_py}; '
                           'the sdist is not the pinned mmcv release')
    setup_py.write_text(patched)
    return n


def build_wheel(out_dir):
    """Build the mmcv wheel with ops from the patched sdist into out_dir."""
    sdist = fetch_sdist()
    with tempfile.TemporaryDirectory(prefix='afd_mm_mmcv_') as tmp:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter='data')
        src = Path(tmp) / f'mmcv-{MMCV_VERSION}'
        n = patch_std(src / 'setup.py')
        print(f'patched {n} -std flags to c++20; building mmcv '
              f'{MMCV_VERSION} with ops (about 10 min on 2 cores)',
              flush=True)
        env = dict(os.environ, MMCV_WITH_OPS='1')
        env.setdefault('FORCE_CUDA', '0')
        env.setdefault('MAX_JOBS', str(os.cpu_count() or 1))
        pip(['install', '-q', 'ninja', 'wheel'])
        out_dir.mkdir(parents=True, exist_ok=True)
        pip(['wheel', '--no-deps', '--no-build-isolation', '-w',
             str(out_dir), str(src)], env=env)


def cached_wheel():
    wheels = sorted(wheel_dir().glob(f'mmcv-{MMCV_VERSION}-*.whl'))
    return wheels[-1] if wheels else None


def pip(args, env=None):
    subprocess.run([sys.executable, '-m', 'pip', *args], check=True, env=env)


def check():
    """Import mmdet and run an mmcv op: raises if the install is broken."""
    code = ('import torch, mmdet; from mmcv.ops import nms; '
            'b = torch.tensor([[0., 0., 2., 2.], [0., 0., 2., 2.1]]); '
            'nms(b, torch.tensor([.9, .8]), .5); print("mmdet", '
            'mmdet.__version__, "with mmcv ops: ok")')
    subprocess.run([sys.executable, '-c', code], check=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='only check the existing install')
    args = parser.parse_args()
    if not args.check:
        start = time.perf_counter()
        wheel = cached_wheel()
        if wheel is None:
            build_wheel(wheel_dir())
            wheel = cached_wheel()
        # mmcv shares its files with mmcv-lite (same version, same Python
        # sources) and adds the compiled ops (mmcv/_ext*.so)
        pip(['install', '-q', '--no-deps', '--force-reinstall', str(wheel)])
        pip(['install', '-q', *DET_REQUIREMENTS])
        print(f'installed {wheel.name} and {" ".join(DET_REQUIREMENTS)} in '
              f'{time.perf_counter() - start:.0f} s', flush=True)
    check()


if __name__ == '__main__':
    main()
