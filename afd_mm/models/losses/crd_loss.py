"""Contrastive representation distillation (Tian et al., 2020).

"Contrastive Representation Distillation", ICLR 2020: student and teacher
embeddings of the same image are a positive pair, embeddings of other
images, read from momentum-updated memory banks, are negatives; the NCE
objective is applied with each network as the anchor in turn.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from afd_mm.registry import MODELS

EPS = 1e-7  # RepDistiller's ``crd/criterion.py``


def embed(feat: Tensor, linear: nn.Linear) -> Tensor:
    """Pool (if a map), project, L2-normalise.

    Args:
        feat (Tensor): (B, C) vector or (B, C, H, W) map (global-average-
            pooled first).
        linear (nn.Linear): C -> d projection.

    Returns:
        Tensor: (B, d) rows of unit L2 norm.
    """
    vec = feat.mean(dim=(2, 3)) if feat.dim() == 4 else feat.flatten(1)
    return F.normalize(linear(vec), dim=1)  # (B, d)


def contrast_scores(memory: Tensor, contrast_idx: Tensor, anchor: Tensor,
                    temperature: float) -> Tensor:
    """exp(<m_j, v> / tau) for the memory rows j of each anchor v.

    Args:
        memory (Tensor): (N, d) memory bank of the other network.
        contrast_idx (Tensor): (B, K+1) rows to read: column 0 the positive
            (the sample's own index), columns 1.. the K negatives.
        anchor (Tensor): (B, d) embeddings v of this network.
        temperature (float): tau.

    Returns:
        Tensor: (B, K+1) unnormalised scores.
    """
    rows = memory[contrast_idx].detach()  # (B, K+1, d)
    dots = torch.einsum('bkd,bd->bk', rows, anchor)  # (B, K+1)
    return torch.exp(dots / temperature)


def nce_loss(probs: Tensor, num_data: int) -> Tensor:
    """NCE loss of CRD (Eq. 18), summed over pairs, mean over anchors.

    With m = K negatives and noise probability P_n = 1 / N, the positive
    contributes log(P / (P + m P_n)) and each negative log(m P_n / (P +
    m P_n)); the loss is minus their sum divided by B.

    Args:
        probs (Tensor): (B, K+1) normalised scores P, positive in column 0.
        num_data (int): N, the dataset length.

    Returns:
        Tensor: scalar.
    """
    m_pn = (probs.shape[1] - 1) / num_data
    log_pos = torch.log(probs[:, 0] / (probs[:, 0] + m_pn + EPS))  # (B,)
    log_neg = torch.log(m_pn / (probs[:, 1:] + m_pn + EPS))  # (B, K)
    return -(log_pos.sum() + log_neg.sum()) / probs.shape[0]


@torch.no_grad()
def momentum_update(memory: Tensor, idx: Tensor, emb: Tensor,
                    momentum: float) -> None:
    """Momentum update of the rows ``idx`` of a bank, in place.

    memory[idx] <- normalise(momentum * memory[idx] + (1 - momentum) * emb).

    Args:
        memory (Tensor): (N, d) memory bank.
        idx (Tensor): (B,) dataset indices.
        emb (Tensor): (B, d) new embeddings.
        momentum (float): weight of the old rows.
    """
    rows = memory[idx] * momentum + emb.detach() * (1 - momentum)  # (B, d)
    memory.index_copy_(0, idx, F.normalize(rows, dim=1))


def _check_positive_int(value, key):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(
            f'CRDLoss needs `{key}` to be a positive int, got {value!r}.')


@MODELS.register_module()
class CRDLoss(nn.Module):
    """CRD: NCE between student and teacher embeddings with memory banks.

    Tian, Krishnan, Isola, "Contrastive Representation Distillation", ICLR
    2020, following RepDistiller's ``CRDLoss``/``ContrastMemory``. The last
    candidate of each network ((B, C) or a (B, C, H, W) map, global-average-
    pooled) goes through its own linear embed head to d = ``feat_dim`` and is
    L2-normalised. Two memory banks (N, d), N = ``num_data``, hold one
    student and one teacher embedding per training image. For each sample,
    its own row (positive) and ``num_negatives`` rows drawn uniformly from
    the N (negatives) are scored against the embedding of the other network,
    ``exp(<m, v> / temperature) / Z``; Z is fixed at the first call as the
    mean score times N (RepDistiller). The loss is NCE with the student as
    anchor (teacher memory) plus NCE with the teacher as anchor (student
    memory). In training mode the banks are then updated with momentum and
    re-normalised. The sample's dataset index is read from
    ``data_samples[i].sample_idx`` (set by mmengine's ``BaseDataset`` and
    packed by mmpretrain's ``PackInputs``).

    Departures from RepDistiller, both for the AFD paper's setting:
    negatives are drawn uniformly from the whole bank (RepDistiller's own
    memory sampler when no ``contrast_idx`` is given; its CIFAR loader's
    default ``mode='exact'`` draws them from other classes instead), so a
    positive may rarely be drawn as its own negative; and their number
    defaults to the batch size of the AFD paper's CIFAR runs.

    The banks and Z (``norm_consts``) are buffers, saved in checkpoints; the
    draw generator's state is not. Under DDP with mmengine's default
    ``broadcast_buffers=True``, rank 0's banks overwrite the others' at each
    step.

    Args:
        teacher_shapes (list[tuple[int]]): per-candidate teacher shapes
            without the batch dimension, from the distiller's probe; only the
            last, (C_t,) or (C_t, H, W), is used.
        student_shapes (list[tuple[int]]): same for the student (C_s).
        num_data (int, optional): N, the length of the training set (e.g.
            50000 for CIFAR-100). Default None: taken from the training set
            before training by :class:`afd_mm.TrainSetSizeHook` (which
            afd_mm's tools/train.py adds); a value given here must match it.
        loss_weight (float): coefficient of the loss in the student
            objective. Defaults to 0.8 (RepDistiller ``-b 0.8`` for ``crd``).
        feat_dim (int): embedding size d. Defaults to 128 (CRD paper,
            RepDistiller ``--feat_dim``).
        num_negatives (int): K, negatives per sample. Defaults to 64: the
            AFD paper sets K to the batch size (64 on CIFAR-100);
            RepDistiller's ``--nce_k`` is 16384.
        temperature (float): tau > 0. Defaults to 0.07 (RepDistiller
            ``--nce_t``).
        momentum (float): weight of the old bank rows, in [0, 1). Defaults to
            0.5 (RepDistiller ``--nce_m``).
        seed (int): seed of the generator that initialises the banks and
            draws the negatives. Defaults to 0.
    """

    loss_name = 'loss_crd'

    def __init__(self, teacher_shapes, student_shapes, *, num_data=None,
                 loss_weight=0.8, feat_dim=128, num_negatives=64,
                 temperature=0.07, momentum=0.5, seed=0):
        super().__init__()
        if num_data is not None:
            _check_positive_int(num_data, 'num_data')
        _check_positive_int(feat_dim, 'feat_dim')
        _check_positive_int(num_negatives, 'num_negatives')
        if temperature <= 0:
            raise ValueError(
                f'CRDLoss needs `temperature` > 0, got {temperature}.')
        if not 0 <= momentum < 1:
            raise ValueError(
                f'CRDLoss needs `momentum` in [0, 1), got {momentum}.')
        c_t = self._channels(teacher_shapes, 'teacher')
        c_s = self._channels(student_shapes, 'student')
        self.loss_weight = loss_weight
        self.num_data = num_data
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.momentum = momentum
        self.embed_s = nn.Linear(c_s, feat_dim)
        self.embed_t = nn.Linear(c_t, feat_dim)
        self._generator = torch.Generator().manual_seed(seed)
        for name in ('memory_s', 'memory_t'):
            self.register_buffer(name, torch.empty(0, feat_dim))
        if num_data is not None:
            self.num_data = None
            self.set_num_data(num_data)
        # Z of the student-anchor and teacher-anchor scores; -1 = unset
        self.register_buffer('norm_consts', torch.full((2,), -1.0))

    def set_num_data(self, num_data: int) -> None:
        """Size the memory banks for a training set of ``num_data`` images.

        Called by the constructor when ``num_data`` is given, else by
        :class:`afd_mm.TrainSetSizeHook` with the training set's length
        before training starts. A ``num_data`` given in the config that
        differs from the training set's length is refused.
        """
        if self.num_data is not None:
            if self.num_data != num_data:
                raise ValueError(
                    f'CRDLoss has num_data={self.num_data} but the training '
                    f'set has {num_data} images: drop `num_data` from the '
                    '`distill_loss` config (it is then taken from the '
                    'training set) or set it to the training set length.')
            return
        _check_positive_int(num_data, 'num_data')
        stdv = 1.0 / math.sqrt(self.memory_s.shape[1] / 3)  # RepDistiller
        for bank in (self.memory_s, self.memory_t):  # in place: DDP's refs
            bank.resize_(num_data, bank.shape[1])
            bank.copy_(torch.rand(bank.shape, generator=self._generator)
                       .mul_(2 * stdv).sub_(stdv))
        self.num_data = num_data

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Banks not yet sized take the size of the checkpoint's."""
        bank = state_dict.get(prefix + 'memory_s')
        if self.num_data is None and bank is not None:
            self.set_num_data(bank.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @staticmethod
    def _channels(shapes, who):
        """C of the last candidate, which must be (C,) or (C, H, W)."""
        if not shapes or len(shapes[-1]) not in (1, 3):
            got = tuple(shapes[-1]) if shapes else 'no candidate'
            raise ValueError(
                f'CRDLoss needs the last {who} candidate to be (C,) or '
                f"(C, H, W), got {got}: change the {who}_recorder's "
                '`patterns`.')
        return shapes[-1][0]

    def sample_indices(self, data_samples, device):
        """(B,) dataset indices of the batch, from ``sample_idx``."""
        if data_samples is None:
            raise ValueError(
                'CRDLoss needs the data_samples of the batch (their '
                '`sample_idx`), got None.')
        idx = []
        for i, sample in enumerate(data_samples):
            if 'sample_idx' not in sample:
                raise ValueError(
                    f'CRDLoss: data_samples[{i}] has no `sample_idx` '
                    'metainfo: keep the dataset index in the pipeline '
                    "(`PackInputs` with 'sample_idx' in `meta_keys`, its "
                    'default).')
            idx.append(int(sample.sample_idx))
        if min(idx) < 0 or max(idx) >= self.num_data:
            raise ValueError(
                f'CRDLoss: sample_idx {max(idx)} is out of range for '
                f'num_data={self.num_data}: set `num_data` to the length of '
                'the training set.')
        return torch.tensor(idx, dtype=torch.long, device=device)

    def forward(self, teacher_feats, student_feats, data_samples):
        """Weighted CRD loss of the last candidates.

        Args:
            teacher_feats (list[Tensor]): teacher candidates; the last is
                (B, C_t) or (B, C_t, H, W) (no gradient).
            student_feats (list[Tensor]): student candidates; the last is
                (B, C_s) or (B, C_s, H, W).
            data_samples (list[DataSample]): the batch's samples, each with
                ``sample_idx`` in its metainfo.

        Returns:
            Tensor: scalar, already multiplied by ``loss_weight``.
        """
        if self.num_data is None:
            raise ValueError(
                'CRDLoss has no `num_data` yet: train with afd_mm\'s '
                'tools/train.py, or add custom_hooks=[dict(type='
                '\'afd_mm.TrainSetSizeHook\')] (it takes the training set '
                'length), or set `num_data` in the `distill_loss` config.')
        s_emb = embed(student_feats[-1], self.embed_s)  # (B, d)
        t_emb = embed(teacher_feats[-1].detach(), self.embed_t)  # (B, d)
        idx = self.sample_indices(data_samples, s_emb.device)  # (B,)
        neg = torch.randint(self.num_data, (len(idx), self.num_negatives),
                            generator=self._generator)  # (B, K)
        contrast_idx = torch.cat([idx[:, None], neg.to(idx.device)], 1)
        out_s = contrast_scores(self.memory_t, contrast_idx, s_emb,
                                self.temperature)  # (B, K+1)
        out_t = contrast_scores(self.memory_s, contrast_idx, t_emb,
                                self.temperature)  # (B, K+1)
        for k, out in enumerate((out_s, out_t)):
            if self.norm_consts[k] < 0:
                self.norm_consts[k] = out.detach().mean() * self.num_data
        loss = (nce_loss(out_s / self.norm_consts[0], self.num_data)
                + nce_loss(out_t / self.norm_consts[1], self.num_data))
        if self.training:
            momentum_update(self.memory_s, idx, s_emb, self.momentum)
            momentum_update(self.memory_t, idx, t_emb, self.momentum)
        return self.loss_weight * loss
