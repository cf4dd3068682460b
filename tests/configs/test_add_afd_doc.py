"""docs/add_afd_to_your_config.md: its config snippets, run exactly as
documented from a folder outside the repository."""
import os
import os.path as osp
import re
import subprocess
import sys

from conftest import REPO, require_mmdet
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import afd_mm  # noqa: F401  (knows `afd_mm::`, as afd_mm's tools do)

DOC = osp.join(REPO, 'docs', 'add_afd_to_your_config.md')
STUDENT_CFG = 'mmpretrain::mobilenet_v2/mobilenet-v2_8xb32_in1k.py'


def documented_snippets():
    """The ```python blocks right after a `<!-- tested: ... -->` marker."""
    with open(DOC, encoding='utf-8') as f:
        text = f.read()
    return re.findall(r'<!-- tested:[^>]*-->\n```python\n(.*?)```', text,
                      flags=re.S)


def write_snippets(folder):
    paths = []
    for i, code in enumerate(documented_snippets()):
        paths.append(str(folder / f'afd_snippet{i}.py'))
        with open(paths[-1], 'w', encoding='utf-8') as f:
            f.write(code)
    return paths


def _without_scope(cfg):
    if isinstance(cfg, dict):
        return {k: _without_scope(v) for k, v in cfg.items()
                if k != '_scope_'}
    return cfg


def test_doc_has_the_two_snippets():
    snippets = documented_snippets()
    assert len(snippets) == 2
    assert "'afd_mm::_base_/afd.py'" in snippets[0]
    assert 'custom_imports' in snippets[1]
    assert all(STUDENT_CFG in code for code in snippets)


def test_snippet_builds_the_inherited_model_as_student(tmp_path,
                                                        monkeypatch):
    path = write_snippets(tmp_path)[0]
    assert not osp.abspath(path).startswith(REPO + os.sep)
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(path)
    base = get_config(STUDENT_CFG)
    assert _without_scope(cfg.model.student) == _without_scope(base.model)
    for key in ('train_dataloader', 'optim_wrapper', 'param_scheduler',
                'data_preprocessor', 'default_hooks'):
        assert _without_scope(cfg[key]) == _without_scope(base[key]), key
    assert cfg.custom_imports.imports == ['afd_mm']

    cfg.model.teacher_ckpt = None  # the real weights are not here
    cfg.model.probe_size = (32, 32)
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    reference = MODELS.build(base.model)
    assert str(model.student) == str(reference)
    assert {k: v.shape for k, v in model.student.state_dict().items()} == \
        {k: v.shape for k, v in reference.state_dict().items()}
    assert model.teacher.backbone.depth == 50
    assert len(model.student_recorder.names) == 17  # MobileNetV2 blocks
    assert len(model.teacher_recorder.names) == 16  # ResNet-50 blocks


# Run in a fresh interpreter from the snippets' folder, like a user's tool:
# mmpretrain's tools/train.py (afd_mm not imported) and afd_mm's (imported).
CHECK = '''
import sys
from mmengine.config import Config
try:
    Config.fromfile(sys.argv[1])
except AssertionError as err:
    print('before import:', err)
cfg = Config.fromfile(sys.argv[2])  # custom_imports imports afd_mm
print('imported:', 'afd_mm' in sys.modules, cfg.model.type)
cfg = Config.fromfile(sys.argv[1])
print('after import:', cfg.model.type, cfg.custom_imports.imports)
'''


def test_snippets_load_from_any_folder(tmp_path):
    paths = write_snippets(tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    env.pop('PYTHONPATH', None)
    out = subprocess.run(
        [sys.executable, '-c', CHECK, *paths], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'before import: mmengine does not support to load afd_mm ' \
        'config' in out.stdout
    assert 'imported: True afd_mm.AFDDistiller' in out.stdout
    assert "after import: afd_mm.AFDDistiller ['afd_mm']" in out.stdout


def test_detection_snippet_wraps_the_mmdet_model(tmp_path, monkeypatch):
    require_mmdet()
    with open(DOC, encoding='utf-8') as f:
        (code, ) = re.findall(
            r'<!-- tested-det:[^>]*-->\n```python\n(.*?)```', f.read(),
            flags=re.S)
    path = tmp_path / 'afd_det.py'
    path.write_text(code)
    monkeypatch.chdir(tmp_path)
    cfg = Config.fromfile(str(path))
    base = get_config('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py')
    assert _without_scope(cfg.model.student) == _without_scope(base.model)
    assert cfg.default_scope == 'mmpretrain'
    init_default_scope(cfg.default_scope)
    cfg.model.teacher_ckpt = None
    model = MODELS.build(cfg.model)
    assert type(model.student).__name__ == 'RetinaNet'
    assert model.teacher_recorder.names[-1] == 'neck.fpn_convs.4'
