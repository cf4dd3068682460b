"""Config text read as data (afd_mm/utils/config_text.py), never run."""
import os.path as osp

import pytest
from mmengine.config import Config

from afd_mm.utils.config_text import config_from_text

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY_CFG = osp.join(REPO, 'tests', 'data', 'afd_tiny_cifar.py')


def test_pretty_text_of_a_real_config_reads_back_equal():
    cfg = Config.fromfile(TINY_CFG)
    parsed = config_from_text(cfg.pretty_text, 'tiny')
    assert parsed.to_dict() == Config.fromstring(
        cfg.pretty_text, file_format='.py').to_dict()
    assert parsed.model.student.backbone.depth == 8


@pytest.mark.parametrize('text, shown', [
    ("x = open('/tmp/f', 'w')", "open('/tmp/f', 'w')"),
    ('import os', 'import os'),
    ("model = dict(a=__import__('os').system('id'))",
     "__import__('os').system('id')"),
    ('x = dict(**other)', 'dict(**other)'),
    ('x = [i for i in range(3)]', '[i for i in range(3)]'),
])
def test_anything_but_data_is_refused_naming_the_line(text, shown,
                                                       tmp_path):
    with pytest.raises(ValueError) as err:
        config_from_text('a = 1\n' + text, "meta['cfg'] of x.pth")
    message = str(err.value)
    assert message.startswith("meta['cfg'] of x.pth, line 2: ")
    assert shown in message and 'never executed' in message
