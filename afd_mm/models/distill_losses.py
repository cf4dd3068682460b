"""The distiller's distillation losses: one or several, each a term.

``AFDDistiller(distill_loss=...)`` takes one loss config (a dict with
``type``), a list of them, or a dict ``name -> loss config``. Each becomes a
``LossTerm``: the built loss, its key in the log and the two recorders it
reads. A loss config may carry its own ``student_recorder`` /
``teacher_recorder`` (FeatureRecorder configs, popped before the loss is
built); without them it shares the distiller's. Its weight is its own
``loss_weight``, and a schedule (``afd_mm.DistillScheduleHook``) may scale
each term by its log key.

The functions here are what the distiller calls: ``loss_configs`` (parse),
``build_terms`` (after the probe), ``set_transforms`` (what each recorder
applies in its hook), ``record_all`` and ``term_losses``.
"""
import contextlib
import copy
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from torch import nn

from afd_mm.registry import MODELS

RECORDER_KEYS = ('student_recorder', 'teacher_recorder')


@dataclass
class LossTerm:
    """One distillation loss of a distiller.

    Attributes:
        key (str): its key in the losses dict and the log, e.g.
            ``'loss_afd'``.
        loss (nn.Module): the built loss (registered in the distiller).
        student_recorder (FeatureRecorder): the recorder of its student
            candidates (the distiller's unless the config gave one).
        teacher_recorder (FeatureRecorder): same for the teacher.
    """

    key: str
    loss: nn.Module
    student_recorder: object
    teacher_recorder: object


def loss_configs(distill_loss) -> List[Tuple[Optional[str], dict]]:
    """``distill_loss`` as ``[(name or None, loss config)]``.

    Args:
        distill_loss (dict | list[dict] | dict[str, dict] | None): one loss
            config (has ``type``), a list of them, or ``name -> config``.

    Returns:
        list: ``(None, cfg)`` for a single config or list items (the log
        key is then the loss class's ``loss_name``), ``(name, cfg)`` for the
        dict form (log key ``loss_<name>``). Empty for None.
    """
    if distill_loss is None:
        return []
    if isinstance(distill_loss, dict) and 'type' in distill_loss:
        return [(None, copy.deepcopy(distill_loss))]
    if isinstance(distill_loss, dict):
        items = list(distill_loss.items())
    elif isinstance(distill_loss, (list, tuple)):
        items = [(None, cfg) for cfg in distill_loss]
    else:
        raise TypeError(
            '`model.distill_loss` must be a loss config (dict with `type`), '
            'a list of them or a dict name -> loss config, got '
            f'{type(distill_loss).__name__}.')
    for name, cfg in items:
        if not isinstance(cfg, dict) or 'type' not in cfg:
            where = f'[{name!r}]' if name is not None else ' list item'
            raise TypeError(
                f'`model.distill_loss`{where} must be a loss config with a '
                f'`type`, got {cfg!r}.')
    return [(name, copy.deepcopy(cfg)) for name, cfg in items]


def pop_recorders(cfg: dict) -> Tuple[dict, Optional[dict], Optional[dict]]:
    """Split a loss config into (loss config, student rec., teacher rec.)."""
    cfg = dict(cfg)
    recorders = [cfg.pop(key, None) for key in RECORDER_KEYS]
    return (cfg, *recorders)


def log_key(name: Optional[str], loss: nn.Module) -> str:
    """``loss_<name>`` for a named loss, else the class's ``loss_name``."""
    if name is None:
        return getattr(loss, 'loss_name', 'loss_' + type(loss).__name__)
    return name if name.startswith('loss_') else f'loss_{name}'


def build_terms(configs, recorders, shapes) -> List[LossTerm]:
    """Build each loss with its recorders' candidate shapes.

    Args:
        configs (list): ``(name, loss config)`` from ``pop_recorders`` (the
            recorder keys removed).
        recorders (list[tuple]): per config, its (student, teacher)
            recorders.
        shapes (dict): ``id(recorder) -> list of candidate shapes`` from
            the probe.

    Returns:
        list[LossTerm]: in config order; log keys are unique.
    """
    terms = []
    for (name, cfg), (s_rec, t_rec) in zip(configs, recorders):
        loss = MODELS.build(cfg, default_args=dict(
            teacher_shapes=shapes[id(t_rec)],
            student_shapes=shapes[id(s_rec)]))
        terms.append(LossTerm(log_key(name, loss), loss, s_rec, t_rec))
    keys = [t.key for t in terms]
    dupes = sorted({k for k in keys if keys.count(k) > 1} | (
        {'loss_cls', 'loss_kd'} & set(keys)))
    if dupes:
        raise ValueError(
            f'`model.distill_loss` gives the log key(s) {dupes} twice (or '
            "as the distiller's own loss_cls/loss_kd): write distill_loss "
            'as a dict name -> loss config with distinct names, e.g. '
            "dict(at1=dict(type='afd_mm.ATLoss'), at2=...).")
    return terms


def check_kd_once(terms: List[LossTerm], kd_weight: float) -> None:
    """KD on logits is the distiller's ``kd_weight`` term OR a KDLoss."""
    kd = [t.key for t in terms if type(t.loss).__name__ == 'KDLoss']
    if kd and kd_weight > 0:
        raise ValueError(
            f'KD is configured twice: `model.kd_weight={kd_weight}` and the '
            f'KDLoss term(s) {kd} of `model.distill_loss`. Keep one: set '
            '`kd_weight=0`, or remove the KDLoss from distill_loss.')


def set_transforms(terms: List[LossTerm]) -> None:
    """Give each recorder the ``feature_transform`` of the loss it serves.

    A loss with a ``feature_transform`` (AFD: g(h) and v(h) of each map)
    then gets it applied in the recorder's hooks, so the maps are not kept;
    a recorder that serves several losses keeps the outputs, and
    ``term_losses`` applies the transform for the loss that wants one.
    """
    for side in ('student', 'teacher'):
        recorders = unique(getattr(t, f'{side}_recorder') for t in terms)
        for rec in recorders:
            users = [t.loss for t in terms
                     if getattr(t, f'{side}_recorder') is rec]
            rec.transform = getattr(users[0], 'feature_transform', None) \
                if len(users) == 1 else None


def _feats_for(term: LossTerm, feats: list, side: str) -> list:
    """A term's candidates as its loss reads them (``feature_transform``
    applied here where its recorder did not apply it)."""
    transform = getattr(term.loss, 'feature_transform', None)
    recorder = getattr(term, f'{side}_recorder')
    if transform is None or recorder.transform is transform:
        return feats
    return [transform(h) for h in feats]


def unique(recorders) -> list:
    """The distinct recorders, first occurrence order."""
    out = []
    for rec in recorders:
        if all(rec is not r for r in out):
            out.append(rec)
    return out


@contextlib.contextmanager
def record_all(terms: List[LossTerm], side: str
               ) -> Iterator[Dict[int, list]]:
    """Record with every distinct ``side`` recorder of ``terms`` at once.

    Yields ``{id(recorder): feats}``; each list is filled when the block
    exits, as ``FeatureRecorder.record`` does.
    """
    recorders = unique(getattr(t, f'{side}_recorder') for t in terms)
    with contextlib.ExitStack() as stack:
        feats = {id(rec): stack.enter_context(rec.record())
                 for rec in recorders}
        yield feats


def term_losses(terms: List[LossTerm], t_feats: Dict[int, list],
                s_feats: Dict[int, list], data_samples,
                scales: Dict[str, float], extra: Callable,
                compiled: Dict[str, Callable]) -> dict:
    """``{key: scale * loss(...)}`` of each term.

    Args:
        terms (list[LossTerm]): the active terms.
        t_feats (dict): ``id(recorder) -> teacher candidates``.
        s_feats (dict): ``id(recorder) -> student candidates``.
        data_samples (list[DataSample]): the batch.
        scales (dict): ``key -> factor`` of a schedule (missing: 1).
        extra (callable): ``extra(term) -> dict`` of keyword arguments for
            losses that need more than the features (L2T).
        compiled (dict): ``key -> torch.compile'd loss forward`` where the
            distiller compiles; the others run eagerly.
    """
    losses = {}
    for term in terms:
        loss = compiled.get(term.key, term.loss)
        value = loss(
            _feats_for(term, t_feats[id(term.teacher_recorder)], 'teacher'),
            _feats_for(term, s_feats[id(term.student_recorder)], 'student'),
            data_samples, **extra(term))
        scale = scales.get(term.key, 1.0)
        losses[term.key] = value if scale == 1.0 else scale * value
    return losses
