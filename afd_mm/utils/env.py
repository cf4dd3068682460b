"""Switches read from the environment (AFD_MM_MALLOC, AFD_MM_KERNELS)."""
import os

__all__ = ['env_choice']


def env_choice(key, choices, default, environ=None):
    """The value of the environment variable ``key``, one of ``choices``.

    Args:
        key (str): the variable's name.
        choices (dict): {allowed value: what it means}, for the message.
        default (str): the value when ``key`` is unset.
        environ (dict, optional): the environment to read (default
            ``os.environ``).

    Returns:
        str: a key of ``choices``.

    Raises:
        ValueError: the variable holds anything else; the message lists
            the allowed values with their meanings.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(key, default)
    if value not in choices:
        allowed = ' or '.join(f'"{choice}" ({meaning})'
                              for choice, meaning in choices.items())
        raise ValueError(f'{key}={value!r} is not understood: set it to '
                         f'{allowed}, or unset it.')
    return value
