"""Checks shared by afd_mm's dataset readers."""
from typing import Sequence


def check_split(dataset: str, split: str, splits: Sequence[str]) -> str:
    """Return ``split`` if it is one of ``splits``, else say what to change.

    Args:
        dataset (str): the reader's name, for the message.
        split (str): the ``split`` key of the dataset config.
        splits (Sequence[str]): the splits the reader knows.
    """
    if split not in splits:
        raise ValueError(
            f'{dataset}: split={split!r} is not one of {tuple(splits)}; '
            'change `split` in the dataset config.')
    return split
