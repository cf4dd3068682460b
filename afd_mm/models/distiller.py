"""AFDDistiller: a frozen teacher and a student trained with AFD."""
import contextlib
import copy
import functools
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch._functorch.config as functorch_config
from mmengine.config import Config
from mmengine.hub import get_config
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel
from mmpretrain.models.classifiers import BaseClassifier
from torch import nn

from afd_mm.registry import MODELS
from afd_mm.utils.checkpoint import extract_state_dict, load_checkpoint_file

from . import distill_losses as dl
from .candidates import candidate_table
from .losses.kd_loss import kd_loss
from .zoo_teacher import is_zoo_name, zoo_teacher

_DEFAULT_RECORDER = dict(type='afd_mm.FeatureRecorder', patterns=None)
# compile's default activation memory budget (AOTAutograd's partitioner
# keeps this share of the activations for the backward, recomputes the
# rest); its effect is measured in docs/benchmarks.md
COMPILE_MEMORY_BUDGET = 0.5


@MODELS.register_module()
class AFDDistiller(BaseModel):
    """Teacher-student distillation model for mmengine's Runner.

    In training, ``forward(mode='loss')`` runs the frozen teacher and the
    student on the same batch, records both sides' candidate features and
    returns::

        {'loss_cls': CE, 'loss_kd': alpha_kd * KD_T, <loss_name>: beta * L}

    where ``L`` is ``distill_loss`` (AFD by default), or one such term per
    loss when ``distill_loss`` is a list or dict (``loss_afd``, ``loss_at``,
    ...; see ``afd_mm/models/distill_losses.py``). A schedule
    (``afd_mm.DistillScheduleHook``) may scale each term; when it switches
    every distillation term off, the teacher does not run and the step
    costs what the student alone costs. Validation, test and
    prediction run the student alone, so the task's own evaluators work
    unchanged. The teacher stays in eval mode, has ``requires_grad=False``
    and runs under ``torch.no_grad()``.

    Classifiers and other models (detectors): teacher and student may be any
    mmengine model with OpenMMLab's ``extract_feat`` / ``loss`` /
    ``predict`` contract. A student that is not an mmpretrain classifier
    (an mmdet detector) gets its own losses from ``student.loss(inputs,
    data_samples)`` (logged under its own keys: ``loss_rpn_cls``,
    ``loss_bbox``, ...) while its candidates are recorded; such a teacher
    runs ``extract_feat`` only, so its candidates must lie in its backbone
    or neck. Logit KD needs class logits from both sides and is switched
    off otherwise. Input sizes may change from batch to batch for such
    students (detection batches are padded per batch).

    Args:
        student (dict): config of any mmpretrain classifier (e.g.
            ``ImageClassifier``) or mmdet detector (e.g. ``FasterRCNN``),
            copied unchanged from its toolbox's config.
        teacher (dict | str): the teacher's model config, the
            path of a config file whose ``model`` is the teacher
            (``'mmpretrain::resnet/resnet34_8xb32_in1k.py'`` works), or the
            name of an mmpretrain model-zoo model (any name
            ``mmpretrain.list_models()`` knows, e.g.
            ``'resnet34_8xb32_in1k'``): its config is built and its
            published weights fetched into torch hub's checkpoint folder
            (see ``zoo_teacher.py``) unless ``teacher_ckpt`` is given.
        teacher_ckpt (str, optional): teacher weights, a local path or an
            http(s) URL, loaded with ``weights_only=True``. Keys must fit
            the teacher exactly. ``None`` keeps the teacher's own init
            (tests, or a teacher config with ``init_cfg``), or for a
            model-zoo name loads its published weights.
        student_recorder (dict): a ``afd_mm.FeatureRecorder`` config choosing
            the student's candidates. Default: the backbone family's default
            (``FAMILY_PATTERNS`` in ``candidates.py``; every residual block
            for ResNets).
        teacher_recorder (dict): same for the teacher.
        distill_loss (dict | list[dict] | dict[str, dict], optional): the
            distillation loss, default ``afd_mm.AFDLoss`` with its defaults
            (beta 200); or a list of loss configs, or a dict name -> loss
            config, for several losses at once (e.g. AT + FitNet, AFD +
            DKD). Each is logged under its class's ``loss_name`` (list) or
            ``loss_<name>`` (dict), weighted by its own ``loss_weight``,
            and may carry its own ``student_recorder`` /
            ``teacher_recorder`` keys (FeatureRecorder configs) instead of
            sharing the distiller's. Candidate shapes are filled in from
            the probe forward. A loss with ``needs_student = True`` (L2T)
            also gets ``student``, ``inputs`` and ``student_recorder`` as
            keyword arguments. ``None`` trains with CE (+ KD) only.
        kd_weight (float): alpha_kd of Hinton's KD on logits. Default 0.9
            (the AFD release on CIFAR-100). Switched off, with a log line,
            when teacher and student predict different numbers of classes.
            Logit KD is this term: an ``afd_mm.KDLoss`` in ``distill_loss``
            while ``kd_weight > 0`` is an error (KD configured twice).
        kd_temperature (float): KD temperature. Default 4 (the release).
        kd_standardize (bool): logit standardisation (Sun et al., CVPR
            2024) in the KD term: both logit rows are Z-scored before the
            softmax, ``kd_temperature`` being the base temperature. Default
            False (Hinton's KD).
        probe_size (tuple[int, int]): input (H, W) of the one probe forward
            that finds candidate shapes at build time. Default (32, 32);
            afd_mm's tools/train.py and tools/list_candidates.py fill it
            with the training pipeline's crop size when the config has a
            crop and does not set ``probe_size``. Classifier students
            must then be trained at this size; other students (detectors)
            take any size (only the candidates' channels are fixed).
        compile (bool | dict): run the student's training forward (with
            the recorder hooks and the loss's ``feature_transform``) and
            the distillation loss under ``torch.compile``; a dict is
            passed to it as keyword arguments, e.g. ``dict(mode=
            'reduce-overhead')`` for CUDA graphs on a GPU, except its key
            ``activation_memory_budget`` (default
            ``COMPILE_MEMORY_BUDGET``, 0.5; 1.0 turns it off): the share
            of the activations the compiled backward may keep, the rest
            recomputed (torch's AOTAutograd partitioner). A batch of
            another size (the last one of an epoch) compiles once more,
            with dynamic shapes. Default False: eager, the reference
            (``tools/benchmark_speed.py`` measures both). Classifier
            students only.
        data_preprocessor (dict, optional): the batch preprocessor; the
            runner fills it from the config's top-level
            ``data_preprocessor``. Default: the student's. A teacher whose
            own preprocessor (its model dict's ``data_preprocessor``, or the
            top-level one of its config file) normalises differently (mean,
            std, channel order) gets the batch re-normalised to its own
            (``teacher_normalisation``), announced in one log line.
        init_cfg (dict, optional): mmengine init config of the distiller.

    Attributes:
        loss_terms (list[LossTerm]): each distillation loss with its log key
            and recorders (``distill_losses.py``), in config order.
        distill_scales (dict[str, float]): log key -> factor of the term in
            this step, set by ``afd_mm.DistillScheduleHook``; a missing key
            counts as 1, a 0 skips the term.
    """

    def __init__(self,
                 student: dict,
                 teacher: Union[dict, str],
                 teacher_ckpt: Optional[str] = None,
                 student_recorder: dict = _DEFAULT_RECORDER,
                 teacher_recorder: dict = _DEFAULT_RECORDER,
                 distill_loss: Optional[dict] = dict(type='afd_mm.AFDLoss'),
                 kd_weight: float = 0.9,
                 kd_temperature: float = 4.0,
                 kd_standardize: bool = False,
                 probe_size: Sequence[int] = (32, 32),
                 compile: Union[bool, dict] = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        student_model = MODELS.build(student)
        check_model_contract(student_model, 'student')
        if data_preprocessor is None:
            data_preprocessor = student_model.data_preprocessor
        elif isinstance(data_preprocessor, dict):
            data_preprocessor = copy.deepcopy(data_preprocessor)
            data_preprocessor.setdefault('type',
                                         'mmpretrain.ClsDataPreprocessor')
            # Mixup/CutMix live in the classifier's train_cfg; mmpretrain's
            # ImageClassifier hands them to its preprocessor the same way
            data_preprocessor.setdefault('batch_augments',
                                         student.get('train_cfg'))
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.student = student_model
        self.teacher = self._build_teacher(teacher, teacher_ckpt)
        check_model_contract(self.teacher, 'teacher')
        # classifiers output class logits and train at probe_size; other
        # models (detectors) train with their own loss at any input size
        self._student_logits = outputs_logits(self.student)
        self._teacher_norm = teacher_normalisation(self.data_preprocessor,
                                                   self.teacher)
        self.student_recorder = _attach(student_recorder, self.student,
                                        'student_recorder')
        self.teacher_recorder = _attach(teacher_recorder, self.teacher,
                                        'teacher_recorder')
        self.probe_size = tuple(probe_size)
        configs, recorders = self._loss_recorders(distill_loss)
        shapes, num_classes = self._probe(self.probe_size, recorders)
        _log_candidates(self, shapes[id(self.teacher_recorder)],
                        shapes[id(self.student_recorder)])
        self.kd_temperature = kd_temperature
        self.kd_standardize = bool(kd_standardize)
        self.kd_weight = self._check_kd(kd_weight, num_classes)
        self._build_losses(distill_loss, configs, recorders, shapes)
        # per log key, a factor set by afd_mm.DistillScheduleHook
        self.distill_scales: Dict[str, float] = {}
        # torch.compile'd forwards (a plain dict: no module registration)
        self._compiled = {}
        if compile:
            _check_compile(self.student)
            self._compile(compile if isinstance(compile, dict) else {})

    # ----------------------------------------------------------- building
    def _build_teacher(self, teacher: Union[dict, str],
                       ckpt: Optional[str]) -> nn.Module:
        if isinstance(teacher, str) and is_zoo_name(teacher):
            teacher, url = zoo_teacher(teacher)
            ckpt = url if ckpt is None else ckpt
        if isinstance(teacher, str):
            teacher_path = teacher
            cfg = get_config(teacher) if '::' in teacher else \
                Config.fromfile(teacher)
            if 'model' not in cfg:
                raise KeyError(f'Teacher config file {teacher!r} has no '
                               '`model`; fix `teacher` in your config.')
            teacher = _with_preprocessor(cfg)
            if '::' in teacher_path:  # 'mmdet::...': mmdet's registry
                teacher.setdefault('_scope_', teacher_path.split('::')[0])
        model = MODELS.build(teacher)
        if ckpt is not None:
            load_teacher_weights(model, ckpt)
            model._is_init = True  # runner.init_weights() must not reset it
        model.requires_grad_(False)
        return model.eval()

    def _loss_recorders(self, distill_loss) -> Tuple[list, list]:
        """Loss configs without recorder keys; per loss, its recorders."""
        configs, recorders = [], []
        for name, cfg in dl.loss_configs(distill_loss):
            cfg, s_cfg, t_cfg = dl.pop_recorders(cfg)
            where = 'distill_loss' if name is None \
                else f'distill_loss.{name}'
            recorders.append((
                self.student_recorder if s_cfg is None else _attach(
                    s_cfg, self.student, f'{where}.student_recorder'),
                self.teacher_recorder if t_cfg is None else _attach(
                    t_cfg, self.teacher, f'{where}.teacher_recorder')))
            configs.append((name, cfg))
        return configs, recorders

    def _build_losses(self, distill_loss, configs, recorders, shapes):
        """``self.distill_loss`` (one module, or a ModuleDict by log key)
        and ``self.loss_terms`` (list of ``LossTerm``)."""
        terms = dl.build_terms(configs, recorders, shapes)
        dl.check_kd_once(terms, self.kd_weight)
        dl.set_transforms(terms)  # after the probe, which needed the maps
        single = distill_loss is None or 'type' in distill_loss
        self.distill_loss = (terms[0].loss if terms else None) if single \
            else nn.ModuleDict({t.key: t.loss for t in terms})
        self.loss_terms = terms
        self._teacher_head_used = self.kd_weight > 0 or any(
            n.split('.')[0] == 'head' for t in terms
            for n in t.teacher_recorder.names)

    @torch.no_grad()
    def _probe(self, size: Sequence[int], recorders: list
               ) -> Tuple[Dict[int, List[tuple]], Tuple[int, int]]:
        """One dry forward of both nets: candidate shapes, class counts.

        Returns ``{id(recorder): shapes}`` for the distiller's recorders
        and every loss's own (``recorders``: (student, teacher) pairs).
        """
        was_training = self.student.training
        self.student.eval()
        inputs = torch.zeros(2, 3, *size)
        t_recs = dl.unique([self.teacher_recorder] +
                           [t for _, t in recorders])
        s_recs = dl.unique([self.student_recorder] +
                           [s for s, _ in recorders])
        # the maps themselves, not the recorders' transform
        t_feats, t_classes = _probe_forward(self.teacher, t_recs, inputs)
        s_feats, s_classes = _probe_forward(self.student, s_recs, inputs)
        self.student.train(was_training)
        shapes = {id(r): [tuple(f.shape[1:]) for f in feats]
                  for r, feats in zip(t_recs + s_recs, t_feats + s_feats)}
        return shapes, (t_classes, s_classes)

    def _check_kd(self, weight: float, num_classes: Tuple[int, int]
                  ) -> float:
        if weight and None in num_classes:
            print_log(
                f'KD disabled: logit KD needs class logits from both models, '
                f'and the teacher is a {type(self.teacher).__name__}, the '
                f'student a {type(self.student).__name__} (set kd_weight=0 '
                'to silence this).', logger='current')
            return 0.0
        if weight and num_classes[0] != num_classes[1]:
            print_log(
                f'KD disabled: the teacher predicts {num_classes[0]} classes '
                f'and the student {num_classes[1]} (set kd_weight=0 to '
                'silence this).', logger='current')
            return 0.0
        return float(weight)


    def _compile(self, options: dict) -> None:
        """The student's forward (its recorder hooks and their transform
        included) and each distillation loss under ``torch.compile``.

        Bound methods are compiled, not the modules, so the state dict and
        the module tree stay those of the eager model.
        """
        options = dict(options)
        budget = options.pop('activation_memory_budget',
                             COMPILE_MEMORY_BUDGET)
        functions = {'student': self._student_forward}
        functions.update({t.key: t.loss.forward for t in self.loss_terms})
        for key, fn in functions.items():
            self._compiled[key] = _with_memory_budget(
                torch.compile(fn, **options), budget)

    def _student_forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The student's logits (its candidates are recorded meanwhile)."""
        return self.student.head(self.student.extract_feat(inputs))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Also load a plain student checkpoint (see route_checkpoint)."""
        route_checkpoint(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def train(self, mode: bool = True) -> 'AFDDistiller':
        """Set train mode on the student; the teacher stays in eval."""
        super().train(mode)
        self.teacher.eval()
        return self

    @property
    def distill_keys(self) -> List[str]:
        """The log keys of the distillation terms (``loss_kd`` first)."""
        return ['loss_kd'] * (self.kd_weight > 0) + [
            t.key for t in self.loss_terms]

    def _active_terms(self) -> Tuple[List['dl.LossTerm'], float]:
        """The loss terms a schedule has not switched off; KD's factor."""
        scales = self.distill_scales
        terms = [t for t in self.loss_terms if scales.get(t.key, 1.0) != 0]
        kd = self.kd_weight * scales.get('loss_kd', 1.0)
        return terms, kd

    # ------------------------------------------------------------ forward
    def forward(self, inputs: torch.Tensor, data_samples=None,
                mode: str = 'tensor'):
        """mmengine's forward: ``'loss'`` distils; others run the student."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode=mode)

    def loss(self, inputs: torch.Tensor, data_samples) -> Dict[str, object]:
        """The student objective of one batch, term by term."""
        if self._student_logits and \
                tuple(inputs.shape[-2:]) != self.probe_size:
            raise ValueError(
                f'Training inputs are {tuple(inputs.shape[-2:])} but the '
                f'candidate shapes were probed at {self.probe_size}: set '
                f'`model.probe_size={tuple(inputs.shape[-2:])}` (the '
                'training crop size) in your config.')
        terms, kd_weight = self._active_terms()
        if not terms and kd_weight == 0:  # scheduled off: no teacher
            return self._student_losses(inputs, data_samples)[1]
        with torch.no_grad(), dl.record_all(terms, 'teacher') as t_feats:
            t_out = self._teacher_forward(
                renormalise(inputs, self._teacher_norm))
        with dl.record_all(terms, 'student') as s_feats:
            s_logits, losses = self._student_losses(inputs, data_samples)
        if kd_weight > 0:
            losses['loss_kd'] = kd_weight * kd_loss(
                s_logits, t_out, self.kd_temperature, self.kd_standardize)
        losses.update(dl.term_losses(
            terms, t_feats, s_feats, data_samples, self.distill_scales,
            lambda term: self._loss_extra(term, inputs), self._compiled))
        _check_finite(losses, self, inputs, t_out)
        return losses

    def _teacher_forward(self, t_inputs: torch.Tensor):
        """The teacher's logits, or its features where they are not used.
        (Its input is freed on return, not kept to the end of the step.)"""
        if self._teacher_head_used:
            return self.teacher(t_inputs, mode='tensor')
        return self.teacher.extract_feat(t_inputs)

    def _student_losses(self, inputs: torch.Tensor, data_samples
                        ) -> Tuple[Optional[torch.Tensor], dict]:
        """The student's own losses, and its logits (None when it is not a
        classifier: a detector's losses come from its own ``loss``)."""
        if not self._student_logits:
            return None, self.student.loss(inputs, data_samples)
        s_logits = self._compiled.get('student',
                                      self._student_forward)(inputs)
        return s_logits, self._cls_loss(s_logits, data_samples)

    def _cls_loss(self, s_logits, data_samples) -> Dict[str, object]:
        losses = self.student.head._get_loss(s_logits, data_samples)
        losses['loss_cls'] = losses.pop('loss')
        return losses

    def _loss_extra(self, term, inputs) -> dict:
        """Keyword arguments of losses that run the student (L2T)."""
        if not getattr(term.loss, 'needs_student', False):
            return {}
        return dict(student=self.student, inputs=inputs,
                    student_recorder=term.student_recorder)


def _attach(cfg: dict, model: nn.Module, key: str):
    """Build a recorder from ``cfg`` and hook it into ``model``."""
    recorder = MODELS.build(cfg)
    try:
        names = recorder.attach(model)
    except ValueError as err:
        raise ValueError(f'`model.{key}`: {err}') from None
    if not names:
        raise ValueError(
            f'`model.{key}` selected zero candidates (patterns '
            f'{recorder.patterns!r}, selection {recorder.select_args}); '
            'loosen its `patterns` or `indices`.')
    return recorder


def outputs_logits(model: nn.Module) -> bool:
    """True for mmpretrain classifiers: ``forward(mode='tensor')`` gives
    class logits and the loss is the head's on them. Anything else (an
    mmdet detector) trains with its own ``loss``."""
    return isinstance(model, BaseClassifier) and hasattr(model, 'head')


def check_model_contract(model: nn.Module, side: str) -> None:
    """``model`` has OpenMMLab's ``extract_feat`` / ``loss`` / ``predict``."""
    missing = [m for m in ('extract_feat', 'loss', 'predict')
               if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(
            f'The {side} ({type(model).__name__}) has no {missing}: '
            f'`model.{side}` must be an OpenMMLab model with extract_feat, '
            'loss and predict (an mmpretrain classifier, an mmdet '
            'detector).')


def _with_memory_budget(compiled, budget: float):
    """``compiled`` called (and so compiled, recompiles included) with
    ``torch._functorch.config.activation_memory_budget = budget``: the
    fraction of the activations that AOTAutograd's partitioner may keep
    for the backward; it recomputes the rest there."""
    if budget == 1.0:
        return compiled

    @functools.wraps(compiled)
    def run(*args, **kwargs):
        with functorch_config.patch(activation_memory_budget=budget):
            return compiled(*args, **kwargs)
    return run


def _check_compile(student: nn.Module) -> None:
    if not outputs_logits(student):
        raise ValueError(
            f'`model.compile` is supported for classifier students only, '
            f'and the student is a {type(student).__name__}; set '
            '`compile=False` in the AFDDistiller config.')


def _probe_forward(model: nn.Module, recorders: list,
                   inputs: torch.Tensor) -> Tuple[List[list], Optional[int]]:
    """The recorders' candidates on one dry forward, and the number of
    classes (None for a model without class logits, which runs
    ``extract_feat`` only)."""
    logits = outputs_logits(model)
    try:
        with contextlib.ExitStack() as stack:
            feats = [stack.enter_context(r.record(raw=True))
                     for r in recorders]
            out = model(inputs, mode='tensor') if logits \
                else model.extract_feat(inputs)
    except RuntimeError as err:
        if logits or 'did not run' not in str(err):
            raise
        raise RuntimeError(
            f'{err} The {type(model).__name__} is not a classifier: it runs '
            'extract_feat only (backbone, neck), so its candidates must lie '
            'there.') from None
    return feats, _num_classes(out) if logits else None


def route_checkpoint(model: 'AFDDistiller', state_dict: dict,
                     prefix: str = '') -> None:
    """Recognise a plain student checkpoint and move it under ``student.``.

    Runs on every ``load_state_dict`` of the distiller (mmengine's
    ``load_from``, ``--resume``, ``tools/test.py CONFIG CHECKPOINT``). An
    AFD run's checkpoint (``student.``/``teacher.`` keys) passes unchanged.
    A checkpoint whose keys are all the student's, with the student's
    shapes (an mmpretrain classifier's, or tools/convert_to_student.py's
    output) is loaded into ``model.student``; the teacher and the
    distillation loss keep their current weights, and one log line says so.
    Anything else is refused with a ValueError naming the keys that fit
    neither, instead of loading nothing silently.
    """
    keys = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
    if not keys or any(k.startswith(('student.', 'teacher.')) for k in keys):
        return
    student = model.student.state_dict()
    wrong = [k for k in keys if k not in student
             or tuple(state_dict[prefix + k].shape) != tuple(student[k].shape)]
    if wrong:
        raise ValueError(
            f'The checkpoint loaded into the AFDDistiller has no `student.` '
            f'or `teacher.` keys (not an AFD run), and {len(wrong)} of its '
            f'{len(keys)} tensors do not fit the student either (e.g. '
            f'{wrong[:5]}). Pass an AFD run\'s checkpoint or one of the '
            'student architecture in `model.student` (load_from / '
            'tools/test.py CHECKPOINT).')
    for key in keys:
        state_dict[f'{prefix}student.{key}'] = state_dict.pop(prefix + key)
    for key, value in model.state_dict().items():  # teacher, loss: as they are
        state_dict.setdefault(prefix + key, value)
    print_log(
        f'Plain student checkpoint recognised ({len(keys)} of the student\'s '
        f'{len(student)} tensors): loaded into model.student; the teacher '
        'and the distillation loss keep their weights.', logger='current')


def load_teacher_weights(model: nn.Module, ckpt: str) -> None:
    """Load ``ckpt`` into ``model``, requiring the keys to fit exactly."""
    state = extract_state_dict(load_checkpoint_file(ckpt, 'teacher_ckpt'))
    if any(k.startswith('teacher.') for k in state):  # an AFD run's ckpt
        state = extract_state_dict(state, prefix='student.')
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state)
                   if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        raise ValueError(
            f'Teacher checkpoint {ckpt!r} does not fit the teacher model '
            f'({type(model).__name__}): missing keys {missing[:8]} '
            f'({len(missing)} in all), unexpected keys {unexpected[:8]} '
            f'({len(unexpected)} in all), shape mismatches {wrong[:8]}. '
            'Point `teacher_ckpt` at weights of the architecture in '
            '`teacher`, or change `teacher` to match the checkpoint.')
    model.load_state_dict(state)


def _log_candidates(model: 'AFDDistiller', t_shapes, s_shapes) -> None:
    """One table per side at build time (tools/list_candidates.py prints
    the same without training)."""
    for side, names, shapes in (
            ('teacher', model.teacher_recorder.names, t_shapes),
            ('student', model.student_recorder.names, s_shapes)):
        print_log(candidate_table(side, names, shapes), logger='current')


def _with_preprocessor(cfg: Config) -> dict:
    """The ``model`` of a teacher config file, with the file's top-level
    ``data_preprocessor`` (where mmpretrain configs keep it) moved in."""
    model = cfg.model
    if cfg.get('data_preprocessor') and not model.get('data_preprocessor'):
        model = copy.deepcopy(model)
        model['data_preprocessor'] = copy.deepcopy(cfg.data_preprocessor)
    return model


def _norm_of(preprocessor) -> Optional[Tuple[torch.Tensor, torch.Tensor,
                                             bool]]:
    """(mean, std, channel flip) of an mmpretrain ClsDataPreprocessor, or
    None when it does not normalise."""
    if not getattr(preprocessor, '_enable_normalize', False):
        return None
    flip = bool(getattr(preprocessor, '_channel_conversion', False) or
                getattr(preprocessor, 'to_rgb', False))
    return (preprocessor.mean.flatten().float(),
            preprocessor.std.flatten().float(), flip)


def teacher_normalisation(batch_preprocessor, teacher: nn.Module
                          ) -> Optional[Tuple[torch.Tensor, torch.Tensor,
                                              bool]]:
    """How to turn the batch into the teacher's normalisation, or None.

    Returns ``(scale, shift, flip)`` with ``x_t = flip(x) * scale + shift``
    per channel (C, 1, 1), or None when the teacher has no normalising
    preprocessor of its own or normalises as the batch does. A mismatch is
    logged once, here, at build time.
    """
    theirs = _norm_of(getattr(teacher, 'data_preprocessor', None))
    ours = _norm_of(batch_preprocessor)
    if theirs is None:
        return None
    if ours is None:  # the batch is raw pixels
        ours = (torch.zeros_like(theirs[0]), torch.ones_like(theirs[1]),
                bool(getattr(batch_preprocessor, 'to_rgb', False)))
    if ours[2] == theirs[2] and torch.equal(ours[0], theirs[0]) and \
            torch.equal(ours[1], theirs[1]):
        return None
    flip = ours[2] != theirs[2]
    m_s, s_s = (ours[0].flip(0), ours[1].flip(0)) if flip else ours[:2]
    print_log(
        f'The teacher normalises with mean {theirs[0].tolist()}, std '
        f'{theirs[1].tolist()}, to_rgb={theirs[2]}; the batch with mean '
        f'{ours[0].tolist()}, std {ours[1].tolist()}, to_rgb={ours[2]}: the '
        'teacher gets the batch re-normalised to its own.',
        logger='current')
    scale = (s_s / theirs[1]).view(-1, 1, 1)  # (C, 1, 1)
    shift = ((m_s - theirs[0]) / theirs[1]).view(-1, 1, 1)  # (C, 1, 1)
    return scale, shift, flip


def renormalise(inputs: torch.Tensor, norm) -> torch.Tensor:
    """The (B, C, H, W) batch in the teacher's normalisation."""
    if norm is None:
        return inputs
    scale, shift, flip = norm
    inputs = inputs.flip(1) if flip else inputs
    return inputs * scale.to(inputs) + shift.to(inputs)


def _num_classes(logits) -> int:
    if isinstance(logits, (tuple, list)):
        logits = logits[-1]
    return int(logits.shape[-1])


def _check_finite(losses: Dict[str, object], model: nn.Module,
                  inputs: torch.Tensor, teacher_out) -> None:
    """Stop at the first non-finite loss term, naming it, the iteration and
    the likely cause (see :func:`_likely_cause`)."""
    terms = {k: sum(v) if isinstance(v, (list, tuple)) else v
             for k, v in losses.items() if 'loss' in k}  # lists: per level
    terms = {k: v for k, v in terms.items() if isinstance(v, torch.Tensor)}
    with torch.no_grad():  # a sum keeps inf/NaN
        values = torch.stack([v if v.dim() == 0 else v.sum()
                              for v in terms.values()])
        finite = torch.isfinite(values)
    if bool(finite.all()):  # one check (and one device sync) per step
        return
    bad = [k for k, ok in zip(terms, finite.tolist()) if not ok]
    it = MessageHub.get_current_instance().get_info('iter')
    it = 'unknown' if it is None else it + 1  # 1-based, as the log shows
    raise FloatingPointError(
        f'Non-finite loss at iteration {it}: {bad} (values '
        f'{ {k: v for k, v in zip(terms, values.tolist()) if k in bad} }). '
        'Training stopped '
        'before this update; every checkpoint written holds finite values. '
        f'Likely cause: {_likely_cause(model, inputs, teacher_out)}')


def _likely_cause(model: nn.Module, inputs: torch.Tensor,
                  teacher_out) -> str:
    """Input batch, teacher output, or the update (weights or loss scale)."""
    if not bool(torch.isfinite(inputs).all()):
        return ('the input batch, which holds NaN/inf: check the dataset '
                'and its pipeline (`train_dataloader.dataset`).')
    outs = teacher_out if isinstance(teacher_out, (tuple, list)) \
        else [teacher_out]
    if not all(bool(torch.isfinite(o).all()) for o in outs
               if isinstance(o, torch.Tensor)):
        return ('the teacher output, which holds NaN/inf on a finite '
                'batch: check the teacher weights (`teacher_ckpt`) and '
                '`teacher`.')
    for name, param in model.named_parameters():
        if not name.startswith('teacher.') and \
                not bool(torch.isfinite(param).all()):
            return (f'the update itself: the previous optimizer step made '
                    f'`{name}` non-finite; lower the learning rate '
                    '(optim_wrapper.optimizer.lr).')
    return ('the update itself: the weights are finite but the loss '
            'overflows; lower the distillation weight (`loss_weight` of '
            'distill_loss, i.e. beta, or kd_weight) or the learning rate '
            '(optim_wrapper.optimizer.lr).')
