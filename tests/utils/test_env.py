"""env_choice: one check for afd_mm's environment switches."""
import pytest

from afd_mm.utils.env import env_choice

CHOICES = {'on': 'the default', 'off': 'never'}


def test_default_and_set_value():
    assert env_choice('AFD_MM_X', CHOICES, 'on', {}) == 'on'
    assert env_choice('AFD_MM_X', CHOICES, 'on', {'AFD_MM_X': 'off'}) == 'off'


def test_unknown_value_lists_every_choice_with_its_meaning():
    with pytest.raises(ValueError, match=r"^AFD_MM_X='maybe' is not "
                       r'understood: set it to "on" \(the default\) or '
                       r'"off" \(never\), or unset it\.$'):
        env_choice('AFD_MM_X', CHOICES, 'on', {'AFD_MM_X': 'maybe'})
