"""Known third-party warnings that afd_mm's command-line tools silence.

Each tool calls :func:`ignore_known_warnings` before it imports mmengine,
mmcv or mmpretrain. The filters match one message from one module each;
importing the ``afd_mm`` package changes no warning filter, so scripts and
notebooks of your own keep every warning.
"""
import warnings

# (message regex, category, module regex), matched from the start
KNOWN_WARNINGS = (
    # setuptools >= 80: mmengine's is_installed()/get_installed_path()
    # import and reload pkg_resources at every call (about 13 copies in a
    # demo run); setup.cfg pins setuptools<81, which still has it
    (r'pkg_resources is deprecated as an API', UserWarning,
     r'(mmengine\.|importlib$)'),
    # mmcv-lite ships no compiled ops; no afd_mm model uses this attention
    (r'Fail to import ``MultiScaleDeformableAttention``', UserWarning,
     r'mmcv\.cnn\.bricks\.transformer$'),
    # torch >= 2.14 deprecates DDP's broadcast_buffers, which mmengine's
    # default wrapper passes (False) in every multi-process run; afd_mm
    # keeps False: CRD's memory banks are rank-local buffers, the case the
    # warning itself says to keep it for
    (r'`broadcast_buffers` is deprecated', FutureWarning,
     r'mmengine\.model\.wrappers\.distributed$'),
)


def ignore_known_warnings() -> None:
    """Ignore each of ``KNOWN_WARNINGS`` (by message, category, module)."""
    for message, category, module in KNOWN_WARNINGS:
        warnings.filterwarnings('ignore', message=message,
                                category=category, module=module)
