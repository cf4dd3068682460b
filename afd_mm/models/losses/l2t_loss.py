"""Learning what and where to transfer (Jang et al., 2019).

"Learning What and Where to Transfer", ICML 2019 (L2T-ww): every teacher
candidate t is matched to every student candidate s through a 1x1 conv
regressor; meta-networks on the teacher feature decide how much each pair
counts ("where", lambda) and which teacher channels count ("what", w). The
meta-networks are trained by the meta-gradient of the student's
classification loss through a few look-ahead SGD steps of the student.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub
from torch import Tensor
from torch.func import functional_call

from afd_mm.registry import MODELS

ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults, used by L2T-ww
ADAM_EPS = 1e-8


def pair_distance(teacher_map: Tensor, regressed: Tensor) -> Tensor:
    """Per-channel squared error of one pair, mean over positions.

    The teacher map is bilinearly resized to the student's H, W (L2T-ww
    resizes the teacher, not the student).

    Args:
        teacher_map (Tensor): (B, C_t, H_t, W_t) teacher candidate.
        regressed (Tensor): (B, C_t, H_s, W_s) student candidate after the
            pair's 1x1 conv regressor.

    Returns:
        Tensor: (B, C_t).
    """
    if teacher_map.shape[2:] != regressed.shape[2:]:
        teacher_map = F.interpolate(teacher_map, size=regressed.shape[2:],
                                    mode='bilinear', align_corners=False)
    return (teacher_map - regressed).pow(2).mean(dim=(2, 3))  # (B, C_t)


def matching_loss(dists, whats, wheres) -> Tensor:
    """L_wfm = sum over pairs of mean_b lambda[b] * sum_c w[b, c] D[b, c].

    Args:
        dists (list[Tensor]): per pair, (B, C_t) distances.
        whats (list[Tensor]): per pair, (B, C_t) channel weights w.
        wheres (list[Tensor]): per pair, (B,) pair weights lambda.

    Returns:
        Tensor: scalar.
    """
    return sum((lam * (w * d).sum(dim=1)).mean()
               for d, w, lam in zip(dists, whats, wheres))


def sgd_step(params, grads, velocity, lr, momentum, weight_decay):
    """One differentiable step of ``torch.optim.SGD`` (no dampening).

    ``v = momentum * v + g + wd * p`` (``v = g + wd * p`` when ``p`` has
    no velocity yet), ``p = p - lr * v``. A missing (``None``) gradient
    counts as zero.

    Args:
        params (dict[str, Tensor]): current parameters.
        grads (dict[str, Tensor | None]): their gradients.
        velocity (dict[str, Tensor]): momentum buffers; may be empty.
        lr, momentum, weight_decay (float): SGD's hyper-parameters.

    Returns:
        tuple[dict, dict]: new parameters and new velocity.
    """
    new_params, new_velocity = {}, {}
    for name, param in params.items():
        step = weight_decay * param
        if grads[name] is not None:
            step = step + grads[name]
        if name in velocity:
            step = momentum * velocity[name] + step
        new_velocity[name] = step
        new_params[name] = param - lr * step
    return new_params, new_velocity


@torch.no_grad()
def adam_step(params, grads, exp_avgs, exp_avg_sqs, step, lr, weight_decay):
    """One in-place step of ``torch.optim.Adam`` (L2 decay, no amsgrad).

    Args:
        params (list[Tensor]): parameters, updated in place.
        grads (list[Tensor]): their gradients.
        exp_avgs, exp_avg_sqs (list[Tensor]): first and second moments,
            updated in place.
        step (int): 1-based number of this step (bias correction).
        lr, weight_decay (float): Adam's lr and L2 penalty.
    """
    beta1, beta2 = ADAM_BETAS
    for param, grad, avg, avg_sq in zip(params, grads, exp_avgs, exp_avg_sqs):
        grad = grad + weight_decay * param
        avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (avg_sq.sqrt() / math.sqrt(1 - beta2**step)).add_(ADAM_EPS)
        param.addcdiv_(avg, denom, value=-lr / (1 - beta1**step))


def _check_maps(shapes, side):
    recorder = f'{side}_recorder'
    if len(shapes) == 0:
        raise ValueError(
            f'L2TLoss got 0 {side} candidates; change the patterns of the '
            f"distiller's `{recorder}` so they match at least one module.")
    for i, shape in enumerate(shapes):
        if len(shape) != 3:
            raise ValueError(
                f'L2TLoss matches (C, H, W) feature maps, but {side} '
                f'candidate {i} has shape {tuple(shape)}; change the patterns '
                f"of the distiller's `{recorder}` to hook modules that output "
                'maps (residual blocks, not the pooled neck).')


def _resolve_pairs(pairs, num_t, num_s):
    """The (t, s) index pairs: all T x S by default, else validated."""
    if pairs is None:
        return [(t, s) for t in range(num_t) for s in range(num_s)]
    out = []
    for pair in pairs:
        if (len(pair) != 2 or not 0 <= pair[0] < num_t
                or not 0 <= pair[1] < num_s):
            raise ValueError(
                f'L2TLoss `pairs` entry {pair!r} is not a (teacher, student) '
                f'index pair with 0 <= t < {num_t} and 0 <= s < {num_s} (the '
                'recorded candidates); fix `pairs` or set it to None for all '
                'pairs.')
        out.append((int(pair[0]), int(pair[1])))
    if not out:
        raise ValueError('L2TLoss `pairs` is empty; give at least one '
                         '(teacher, student) pair, or None for all pairs.')
    return out


@MODELS.register_module()
class L2TLoss(nn.Module):
    """L2T-ww: meta-learned weighted feature matching (Jang et al., 2019).

    Jang, Lee, Hwang, Shin, "Learning What and Where to Transfer", ICML
    2019, following its released code (``train_l2t_ww.py``) and defaults.
    For each pair p = (t, s) of ``pairs`` (default: all T x S teacher /
    student candidates):

    * a 1x1 conv regressor (with bias) maps the student map to C_t
      channels; the teacher map is bilinearly resized to the student's
      H, W; ``D_p[b, c]`` = mean over positions of the squared difference;
    * "what": ``w_p = softmax(Linear_p(gap(h_t)))`` over the C_t channels,
      Linear(C_t, C_t) initialised to zero (uniform weights);
    * "where": ``lambda_p = relu6(Linear_p(gap(h_t)))``, Linear(C_t, 1)
      with PyTorch's weight init and bias ``where_init`` (1.0);

    and ``loss = loss_weight * sum_p mean_b lambda_p[b] * sum_c w_p[b, c]
    D_p[b, c]``. The student and the regressors are trained by the
    runner's optimizer on the returned loss. The meta-networks are not:
    their parameters have ``requires_grad=False`` and are updated inside
    ``forward`` (training only, every ``meta_period`` calls) by the bilevel
    scheme of L2T-ww, on the same batch:

    1. from the student's current parameters theta (student + regressors),
       ``inner_steps`` (T = 2) differentiable SGD steps on the weighted
       matching loss alone, then one SGD step on the cross-entropy;
    2. the meta-gradient of the cross-entropy at the resulting parameters
       with respect to the meta-networks, back through all those steps
       (second order);
    3. one Adam step (lr ``meta_lr``, L2 decay ``meta_weight_decay``) on
       the meta-networks; the look-ahead parameters are discarded.

    The returned loss then uses the updated meta-networks (detached). The
    look-ahead runs the student through ``torch.func.functional_call`` on
    copies of its parameters and BN buffers, so the real student, its BN
    running statistics and the runner's optimizer state are untouched.
    This costs T + 2 extra forward/backward passes of the student with a
    second-order backward: L2T is expensive by design.

    The loss needs the student, the batch and the student's recorder, so
    it declares ``needs_student = True``: the distiller must call it as
    ``loss(t_feats, s_feats, data_samples, student=..., inputs=...,
    student_recorder=...)``. Labels are ``data_samples[i].gt_label``.

    Departures from the released code, all forced by the one-forward
    design of the distiller:

    * the meta-networks are updated before the student's step of the same
      batch (L2T-ww updates them right after it);
    * the look-ahead SGD starts with zero momentum buffers (L2T-ww reuses
      its student optimizer's buffers), so ``inner_momentum`` only acts
      between the look-ahead steps; its lr is the runner's current lr and
      its momentum / weight decay are the options below, which should
      match ``optim_wrapper.optimizer``;
    * the look-ahead cross-entropy is plain ``F.cross_entropy`` on the
      logits, whatever the head's own loss.

    The Adam moments and step count are buffers (saved and resumed with
    the model). Under DDP the meta-gradients are averaged over ranks; the
    meta-networks get no gradient from the returned loss, so they are
    never "unused parameters" of DDP (``requires_grad=False``).

    Args:
        teacher_shapes (list[tuple]): the T teacher candidates' shapes
            without the batch dimension, each (C, H, W). Filled in by the
            distiller's probe forward; a config never sets it.
        student_shapes (list[tuple]): the S student candidates' shapes,
            each (C, H, W); same.
        loss_weight (float): the weight of the matching loss, in the
            returned loss and in the look-ahead steps. Default: 0.5 (L2T-ww
            ``--beta``; AFD spec section 5).
        pairs (list[tuple[int, int]], optional): (t, s) candidate index
            pairs to match. Default: None, all T x S pairs (L2T-ww's
            default is all 4 x 4 pairs of its recorded stages).
        inner_steps (int): T, look-ahead steps on the matching loss before
            the cross-entropy step. Default: 2 (L2T-ww ``--T``).
        meta_lr (float): Adam's lr for the meta-networks. Default: 1e-4
            (L2T-ww ``--meta-lr``).
        meta_weight_decay (float): Adam's L2 decay. Default: 1e-4 (L2T-ww
            ``--meta-wd``).
        meta_period (int): update the meta-networks every ``meta_period``
            training calls. Default: 1 (L2T-ww ``--meta-period``).
        where_init (float): initial bias of the "where" networks. Default:
            1.0 (L2T-ww ``--loss-weight-init``).
        inner_lr (float, optional): lr of the look-ahead SGD. Default: None,
            the runner's current lr (``train/lr`` in mmengine's message
            hub, as L2T-ww uses its student optimizer's lr).
        inner_momentum (float): momentum of the look-ahead SGD. Default: 0.9
            (the student's SGD, AFD spec section 5).
        inner_weight_decay (float): weight decay of the look-ahead SGD.
            Default: 5e-4 (the CIFAR-100 recipe, AFD spec section 5).
    """

    loss_name = 'loss_l2t'
    needs_student = True

    def __init__(self, teacher_shapes, student_shapes, *, loss_weight=0.5,
                 pairs=None, inner_steps=2, meta_lr=1e-4,
                 meta_weight_decay=1e-4, meta_period=1, where_init=1.0,
                 inner_lr=None, inner_momentum=0.9, inner_weight_decay=5e-4):
        super().__init__()
        _check_maps(teacher_shapes, 'teacher')
        _check_maps(student_shapes, 'student')
        for key, value in (('inner_steps', inner_steps),
                           ('meta_period', meta_period)):
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f'L2TLoss needs `{key}` to be an int >= 1, '
                                 f'got {value!r}.')
        self.pairs = _resolve_pairs(pairs, len(teacher_shapes),
                                    len(student_shapes))
        self.teacher_channels = [int(s[0]) for s in teacher_shapes]
        self.student_channels = [int(s[0]) for s in student_shapes]
        self.loss_weight = loss_weight
        self.inner_steps = inner_steps
        self.meta_lr = meta_lr
        self.meta_weight_decay = meta_weight_decay
        self.meta_period = meta_period
        self.inner_lr = inner_lr
        self.inner_momentum = inner_momentum
        self.inner_weight_decay = inner_weight_decay
        self._build_networks(where_init)
        self.register_buffer('meta_step', torch.zeros((), dtype=torch.long))
        self.register_buffer('num_calls', torch.zeros((), dtype=torch.long))

    def _build_networks(self, where_init):
        self.regressors = nn.ModuleList()
        self.what = nn.ModuleList()
        self.where = nn.ModuleList()
        for t, s in self.pairs:
            c_t, c_s = self.teacher_channels[t], self.student_channels[s]
            self.regressors.append(nn.Conv2d(c_s, c_t, kernel_size=1))
            what = nn.Linear(c_t, c_t)
            nn.init.zeros_(what.weight)
            nn.init.zeros_(what.bias)
            self.what.append(what)
            where = nn.Linear(c_t, 1)
            nn.init.constant_(where.bias, where_init)
            self.where.append(where)
        self.what.requires_grad_(False)
        self.where.requires_grad_(False)
        for name, param in self._meta_params().items():
            key = name.replace('.', '_')
            self.register_buffer(f'exp_avg_{key}', torch.zeros_like(param))
            self.register_buffer(f'exp_avg_sq_{key}', torch.zeros_like(param))

    def _meta_params(self):
        """{'what.i.weight': param, ...}: the meta-networks' parameters."""
        return {f'{group}.{name}': param
                for group in ('what', 'where')
                for name, param in getattr(self, group).named_parameters()}

    # ------------------------------------------------------------ math
    def meta_weights(self, teacher_feats, meta_params):
        """Per pair, "what" (B, C_t) and "where" (B,) of the batch.

        Args:
            teacher_feats (list[Tensor]): T maps (B, C_t, H_t, W_t).
            meta_params (dict[str, Tensor]): the meta-networks' weights,
                keyed as ``_meta_params()``.

        Returns:
            tuple[list[Tensor], list[Tensor]]: whats and wheres.
        """
        gaps = [h.mean(dim=(2, 3)) for h in teacher_feats]  # (B, C_t) each
        whats, wheres = [], []
        for i, (t, _) in enumerate(self.pairs):
            logits = F.linear(gaps[t], meta_params[f'what.{i}.weight'],
                              meta_params[f'what.{i}.bias'])  # (B, C_t)
            whats.append(F.softmax(logits, dim=1))
            lam = F.linear(gaps[t], meta_params[f'where.{i}.weight'],
                           meta_params[f'where.{i}.bias'])  # (B, 1)
            wheres.append(F.relu6(lam)[:, 0])  # (B,)
        return whats, wheres

    def distances(self, teacher_feats, student_feats, regressor_params):
        """Per pair, (B, C_t) distances D_p with the given regressors.

        Args:
            teacher_feats (list[Tensor]): T maps (B, C_t, H_t, W_t).
            student_feats (list[Tensor]): S maps (B, C_s, H_s, W_s).
            regressor_params (dict[str, Tensor]): ``'i.weight'`` (C_t, C_s,
                1, 1) and ``'i.bias'`` (C_t,) of pair i's regressor.

        Returns:
            list[Tensor]: one (B, C_t) tensor per pair.
        """
        dists = []
        for i, (t, s) in enumerate(self.pairs):
            regressed = F.conv2d(student_feats[s],
                                 regressor_params[f'{i}.weight'],
                                 regressor_params[f'{i}.bias'])
            dists.append(pair_distance(teacher_feats[t], regressed))
        return dists

    def weighted_loss(self, teacher_feats, student_feats, whats, wheres,
                      regressor_params):
        """loss_weight * L_wfm for the given weights and regressors."""
        dists = self.distances(teacher_feats, student_feats, regressor_params)
        return self.loss_weight * matching_loss(dists, whats, wheres)

    # ------------------------------------------------------- meta step
    def lookahead_ce(self, meta_params, teacher_feats, labels, student,
                     inputs, student_recorder, lr):
        """Cross-entropy of the student after the look-ahead steps.

        Differentiable with respect to ``meta_params``.

        Args:
            meta_params (dict[str, Tensor]): the meta-networks' weights.
            teacher_feats (list[Tensor]): T maps (B, C_t, H_t, W_t),
                detached.
            labels (Tensor): (B,) class indices.
            student (nn.Module): the student classifier (not modified).
            inputs (Tensor): (B, 3, H, W) the preprocessed batch.
            student_recorder (FeatureRecorder): records the student's S
                candidates.
            lr (float): the look-ahead SGD lr.

        Returns:
            Tensor: scalar.
        """
        whats, wheres = self.meta_weights(teacher_feats, meta_params)
        theta = {'student.' + n: p.detach().requires_grad_()
                 for n, p in student.named_parameters() if p.requires_grad}
        theta.update({'regressor.' + n: p.detach().requires_grad_()
                      for n, p in self.regressors.named_parameters()})
        buffers = {n: b.clone() for n, b in student.named_buffers()}
        velocity = {}
        for step in range(self.inner_steps + 1):
            s_feats, logits = _run_student(student, student_recorder, inputs,
                                           theta, buffers)
            if step < self.inner_steps:
                loss = self.weighted_loss(teacher_feats, s_feats, whats,
                                          wheres, _strip(theta, 'regressor.'))
            else:
                loss = F.cross_entropy(logits, labels)
            grads = torch.autograd.grad(loss, list(theta.values()),
                                        create_graph=True, allow_unused=True)
            theta, velocity = sgd_step(
                theta, dict(zip(theta, grads)), velocity, lr,
                self.inner_momentum, self.inner_weight_decay)
        _, logits = _run_student(student, student_recorder, inputs, theta,
                                 buffers)
        return F.cross_entropy(logits, labels)

    def meta_update(self, teacher_feats, labels, student, inputs,
                    student_recorder):
        """One bilevel update of the meta-networks (Adam, in place)."""
        meta = {n: p.detach().requires_grad_()
                for n, p in self._meta_params().items()}
        lr = self._inner_lr()
        outer = self.lookahead_ce(meta, teacher_feats, labels, student,
                                  inputs, student_recorder, lr)
        grads = torch.autograd.grad(outer, list(meta.values()),
                                    allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else _mean_over_ranks(g)
                 for p, g in zip(meta.values(), grads)]
        if not bool(torch.stack([g.isfinite().all() for g in grads]).all()):
            raise FloatingPointError(
                'L2TLoss: the meta-gradient is not finite, the look-ahead '
                f'({self.inner_steps} SGD steps at lr {lr}) diverged; the '
                'meta-networks were left unchanged. Lower `loss_weight` of '
                'the L2TLoss config or the lr (optim_wrapper.optimizer.lr, '
                'or `inner_lr`), and check that the inputs are normalised '
                '(data_preprocessor mean/std).')
        self.meta_step += 1
        keys = [n.replace('.', '_') for n in meta]
        adam_step(list(self._meta_params().values()), grads,
                  [getattr(self, f'exp_avg_{k}') for k in keys],
                  [getattr(self, f'exp_avg_sq_{k}') for k in keys],
                  int(self.meta_step), self.meta_lr, self.meta_weight_decay)

    def _inner_lr(self):
        if self.inner_lr is not None:
            return float(self.inner_lr)
        lr = MessageHub.get_current_instance().log_scalars.get('train/lr')
        if lr is None:
            raise ValueError(
                'L2TLoss reads the look-ahead lr from the runner (`train/lr` '
                'in the message hub) but there is none: set `inner_lr` in '
                'the L2TLoss config when training outside an mmengine '
                'Runner.')
        return float(lr.current())

    # --------------------------------------------------------- forward
    def forward(self, teacher_feats, student_feats, data_samples=None, *,
                student=None, inputs=None, student_recorder=None):
        """loss_weight * L_wfm, after a meta update when training.

        Args:
            teacher_feats (list[Tensor]): T maps (B, C_t, H_t, W_t), in
                network order; detached here.
            student_feats (list[Tensor]): S maps (B, C_s, H_s, W_s).
            data_samples (list[DataSample]): the batch, with ``gt_label``
                (needed when training).
            student (nn.Module): the student classifier; required in
                training.
            inputs (Tensor): (B, 3, H, W) the preprocessed batch; required
                in training.
            student_recorder (FeatureRecorder): the distiller's student
                recorder; required in training.

        Returns:
            Tensor: the weighted scalar loss.
        """
        self._check_feats(teacher_feats, self.teacher_channels, 'teacher')
        self._check_feats(student_feats, self.student_channels, 'student')
        teacher_feats = [h.detach() for h in teacher_feats]
        if self.training and torch.is_grad_enabled():
            self.num_calls += 1
            if int(self.num_calls - 1) % self.meta_period == 0:
                self._check_meta_inputs(student, inputs, student_recorder,
                                        data_samples)
                labels = torch.cat([d.gt_label for d in data_samples])
                self.meta_update(teacher_feats, labels.to(inputs.device),
                                 student, inputs, student_recorder)
        whats, wheres = self.meta_weights(teacher_feats, self._meta_params())
        return self.weighted_loss(teacher_feats, student_feats, whats, wheres,
                                  dict(self.regressors.named_parameters()))

    def _check_meta_inputs(self, student, inputs, recorder, data_samples):
        missing = [k for k, v in (('student', student), ('inputs', inputs),
                                  ('student_recorder', recorder),
                                  ('data_samples', data_samples)) if v is None]
        if missing:
            raise RuntimeError(
                f'L2TLoss got no {missing} in a training forward: its meta '
                'update re-runs the student. The distiller must pass '
                '`student=`, `inputs=` and `student_recorder=` to losses '
                'with `needs_student = True` (see the L2TLoss docstring).')

    def _check_feats(self, feats, channels, side):
        if len(feats) != len(channels) or any(
                h.dim() != 4 or h.shape[1] != c
                for h, c in zip(feats, channels)):
            raise ValueError(
                f'L2TLoss was built for {side} candidates with channels '
                f'{channels} but got shapes '
                f'{[tuple(h.shape) for h in feats]}; the distiller\'s '
                f'`{side}_recorder` must record the same modules at every '
                'forward as at the probe forward.')


def _mean_over_ranks(grad):
    all_reduce(grad, op='mean')  # in place; a no-op when not distributed
    return grad


def _strip(params, prefix):
    return {n[len(prefix):]: p for n, p in params.items()
            if n.startswith(prefix)}


def _run_student(student, recorder, inputs, theta, buffers):
    """Student forward with ``theta``: (S candidate maps, (B, K) logits)."""
    state = dict(buffers)
    state.update(_strip(theta, 'student.'))
    with recorder.record() as feats:
        logits = functional_call(student, state, (inputs, ),
                                 dict(mode='tensor'))
    return feats, logits
