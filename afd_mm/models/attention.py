"""Who distils into whom: the link weights alpha (B, T, S) (spec section 2).

Symbols: B batch, T teacher candidates, S student candidates, d embedding
size (128), C channels of a candidate.

* ``AFDAttention``: the meta-network, alpha computed per sample and trained
  jointly with the student (the paper's default, "AFD co-trained").
* ``CandidateEmbedding``: its per-candidate Linear + BN1d query and key
  layers, stored stacked per channel count.
* ``FixedLinks``: a constant alpha for the linking ablations (Table 4):
  'ordered', 'random' and 'fixed' (frozen links of an earlier run), built by
  the pure function ``fixed_links``.
"""
import math
import os.path as osp

import numpy as np
import torch
from torch import nn
from torch.autograd.function import once_differentiable

from afd_mm.utils.checkpoint import load_checkpoint_file

from .distance import global_descriptor

__all__ = [
    'LINEAR_INITS', 'FIXED_LINKS', 'link_logits', 'AFDAttention',
    'CandidateEmbedding', 'fixed_links', 'FixedLinks'
]

LINEAR_INITS = ('default', 'xavier')
FIXED_LINKS = ('ordered', 'random', 'fixed')


def link_logits(bilinear_keys, queries, pos_t, pos_s):
    """The attention logits before the softmax over students.

    logit[b, t, s] = (<k_{s,t}[b], q_t[b]> + (P_T P_S^T)[t, s]) / sqrt(d)

    Args:
        bilinear_keys (Tensor): k_{s,t}, (B, S, T, d).
        queries (Tensor): q_t, (B, T, d).
        pos_t (Tensor): teacher positional encodings P_T, (T, d).
        pos_s (Tensor): student positional encodings P_S, (S, d).

    Returns:
        Tensor: (B, T, S).
    """
    content = torch.einsum('bstd,btd->bts', bilinear_keys,
                           queries)  # (B, T, S)
    position = pos_t @ pos_s.t()  # (T, S)
    return (content + position) / math.sqrt(queries.shape[-1])  # (B, T, S)


class AFDAttention(nn.Module):
    """AFD's meta-network: per-sample link weights between candidates.

    For every teacher candidate t a query q_t = BN1d(Linear_t(g(h_t)))
    (identity activation); for every student candidate s a key
    k_s = ReLU(BN1d(Linear_s(g(h_s)))). One shared bilinear layer
    BN1d(Linear(d -> T * d)) maps each key to T keys k_{s,t}. With learnt
    positional encodings P_T, P_S::

        logit[b, t, s] = (<k_{s,t}[b], q_t[b]> + (P_T P_S^T)[t, s]) / sqrt(d)
        alpha[b, t, :] = softmax over s of logit[b, t, :]

    The BN1d layers are standard (affine, batch statistics in training); the
    bilinear BN's statistics pool over the B * S keys. The query and key
    layers are stored stacked per distinct C (``CandidateEmbedding``), so
    candidates of equal width run as one batched op. In training the
    bilinear layer + BN + dot product are factorised so that the
    (B, S, T, d) bilinear keys are never formed (``_content_factorised``);
    ``bilinear_keys`` still forms them, for inspection. Parameters:
    sum_t (C_t + 3) d + sum_s (C_s + 3) d + (d + 3) T d + (T + S) d, e.g.
    643,200 for ResNet-56 -> ResNet-20 (spec section 2).

    Args:
        teacher_channels (list[int]): C of each of the T teacher candidates,
            in network order.
        student_channels (list[int]): C of each of the S student candidates,
            in network order.
        embed_dim (int): d, the size of queries and keys. Default: 128
            (paper and release).
        linear_init (str): initialisation of the Linear layers. 'default'
            keeps PyTorch's (the release's behaviour, the default);
            'xavier' uses Xavier-normal weights and zero biases (the
            paper's appendix). P_T and P_S are Xavier-normal either way.
    """

    def __init__(self, teacher_channels, student_channels, embed_dim=128,
                 linear_init='default'):
        super().__init__()
        if linear_init not in LINEAR_INITS:
            raise ValueError(
                f'linear_init={linear_init!r} is not supported; choose one '
                f'of {LINEAR_INITS} (the `linear_init` key of AFDLoss).')
        d, num_t = embed_dim, len(teacher_channels)
        self.embed_dim = embed_dim
        self.query_layers = CandidateEmbedding(teacher_channels, d)
        self.key_layers = CandidateEmbedding(student_channels, d, relu=True)
        self.bilinear = nn.Sequential(
            nn.Linear(d, num_t * d), nn.BatchNorm1d(num_t * d))
        self.pos_t = nn.Parameter(torch.empty(num_t, d))
        self.pos_s = nn.Parameter(torch.empty(len(student_channels), d))
        nn.init.xavier_normal_(self.pos_t)
        nn.init.xavier_normal_(self.pos_s)
        if linear_init == 'xavier':
            self._init_linear_xavier()

    def _init_linear_xavier(self):
        self.query_layers.init_xavier()
        self.key_layers.init_xavier()
        nn.init.xavier_normal_(self.bilinear[0].weight)
        nn.init.zeros_(self.bilinear[0].bias)

    def queries(self, teacher_feats):
        """q_t for every teacher candidate.

        Args:
            teacher_feats (list[Tensor]): T tensors (B, C_t, H, W) or
                (B, C_t).

        Returns:
            Tensor: (B, T, d).
        """
        return self.query_layers(
            [global_descriptor(h) for h in teacher_feats])  # (B, T, d)

    def keys(self, student_feats):
        """k_s for every student candidate.

        Args:
            student_feats (list[Tensor]): S tensors (B, C_s, H, W) or
                (B, C_s).

        Returns:
            Tensor: (B, S, d).
        """
        return self.key_layers(
            [global_descriptor(h) for h in student_feats])  # (B, S, d)

    def bilinear_keys(self, student_feats):
        """k_{s,t}: every student's key transformed for every teacher.

        Args:
            student_feats (list[Tensor]): S tensors (B, C_s, H, W) or
                (B, C_s).

        Returns:
            Tensor: (B, S, T, d).
        """
        keys = self.keys(student_feats)  # (B, S, d)
        b, s, d = keys.shape
        keys = self.bilinear(keys.reshape(b * s, d))  # (B * S, T * d)
        return keys.reshape(b, s, -1, d)  # (B, S, T, d)

    def _content_factorised(self, keys, queries):
        """<k_{s,t}[b], q_t[b]> without the (B, S, T, d) bilinear keys.

        With x = W k + c the bilinear Linear (W viewed as (T, d, d)) and
        BN's batch statistics over the N = B * S keys, mean W kbar + c and
        variance diag(W Sigma W^T) (Sigma the keys' biased covariance)::

            <BN(x)_t, q_t> = <M_t, k - kbar> + <beta_t, q_t>,
            M_t = W_t^T (gamma_t / sqrt(var_t + eps) * q_t)

        which is exactly training-mode BN followed by the dot product, at
        a fraction of the cost and memory. The running statistics are
        updated as ``nn.BatchNorm1d`` does.

        Args:
            keys (Tensor): k_s, (B, S, d).
            queries (Tensor): q_t, (B, T, d).

        Returns:
            Tensor: (B, T, S).
        """
        linear, bn = self.bilinear
        b, num_s, d = keys.shape
        num_t = queries.shape[1]
        # the Linear bias cancels against the batch mean; (c - c) keeps it
        # in the graph, so it gets its (zero) gradient and weight decay as
        # in the unfactorised layer
        shift = (bn.bias + (linear.bias - linear.bias)).view(num_t, d)
        content, var, mean = _BilinearContent.apply(
            queries, keys, linear.weight, bn.weight.view(num_t, d), shift,
            bn.eps)  # (B, T, S), (T * d, ), (d, )
        _update_running_stats([bn], (linear.weight @ mean + linear.bias)[None],
                              var[None], b * num_s)
        return content

    def forward(self, teacher_feats, student_feats):
        """Link weights alpha, per sample.

        Args:
            teacher_feats (list[Tensor]): T tensors (B, C_t, H, W) or
                (B, C_t), in network order.
            student_feats (list[Tensor]): S tensors (B, C_s, H, W) or
                (B, C_s), in network order.

        Returns:
            Tensor: alpha (B, T, S); each row alpha[b, t] sums to 1.
        """
        queries = self.queries(teacher_feats)  # (B, T, d)
        keys = self.keys(student_feats)  # (B, S, d)
        if not _plain_bn(self.bilinear[1], self.training,
                         keys.shape[0] * keys.shape[1]):
            b, s, d = keys.shape
            bilinear = self.bilinear(keys.reshape(b * s, d))
            logits = link_logits(bilinear.reshape(b, s, -1, d), queries,
                                 self.pos_t, self.pos_s)  # (B, T, S)
            return logits.softmax(dim=2)  # (B, T, S)
        content = self._content_factorised(keys, queries)  # (B, T, S)
        position = self.pos_t @ self.pos_s.t()  # (T, S)
        logits = (content + position) / math.sqrt(self.embed_dim)
        return _SoftmaxLastDim.apply(logits)  # (B, T, S)


def _plain_bn(bn, training, rows):
    """A standard BN1d in training over more than one row.

    Its output is then computed here from batch statistics (factorised or
    batched over candidates); anything else (eval mode, SyncBN, a batch of
    one, which BN itself rejects) runs the module itself.
    """
    return (training and bn.training and type(bn) is nn.BatchNorm1d
            and bn.affine
            and bn.track_running_stats and rows > 1)


@torch.no_grad()
def _update_running_stats(bns, mean, var, rows):
    """What ``nn.BatchNorm1d``'s training forward does to its buffers.

    Args:
        bns (list[nn.BatchNorm1d]): n layers.
        mean (Tensor): their batch means, (n, d).
        var (Tensor): their biased batch variances, (n, d).
        rows (int): the number of rows the statistics pool.
    """
    unbiased = var * (rows / (rows - 1))
    for bn, m, v in zip(bns, mean, unbiased):
        bn.num_batches_tracked.add_(1)
        momentum = bn.momentum
        if momentum is None:  # cumulative moving average
            momentum = 1.0 / float(bn.num_batches_tracked)
        bn.running_mean.lerp_(m.to(bn.running_mean.dtype), momentum)
        bn.running_var.lerp_(v.to(bn.running_var.dtype), momentum)


class _SoftmaxLastDim(torch.autograd.Function):
    """``x.softmax(dim=-1)`` from elementwise ops and two reductions.

    On CPU PyTorch's softmax kernel is slow for a short last dim such as
    the S students (about 0.3 ms for (64, 27, 9), several times the
    elementwise ops); same values up to float rounding, backward
    y * (g - <g, y>).
    """

    @staticmethod
    def forward(ctx, x):
        y = (x - x.amax(dim=-1, keepdim=True)).exp_()
        y = y.div_(y.sum(dim=-1, keepdim=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        y, = ctx.saved_tensors
        return grad.sub((grad * y).sum(dim=-1, keepdim=True)).mul_(y)


# elements of one temporary of the meta-network's fused Functions, which
# run a chunk of rows or teachers at a time: 256 KiB in float32
_CHUNK_ELEMENTS = 1 << 16


def _chunks(total, per_item):
    """Slices covering range(total), each of about ``_CHUNK_ELEMENTS``
    elements when an item holds ``per_item``."""
    step = max(1, _CHUNK_ELEMENTS // max(per_item, 1))
    return [slice(i, min(i + step, total)) for i in range(0, total, step)]


class _BilinearContent(torch.autograd.Function):
    """<BN(W k_s + c)_t, q_t> for all b, t, s from BN's batch statistics.

    The end of ``_content_factorised``. Inputs: queries q (B, T, d), keys
    k (B, S, d), the bilinear weight W (T d, d), BN's gamma and beta (as
    ``shift``), both (T, d), and BN's eps. With kbar and Sigma the mean
    and biased covariance of the N = B S keys::

        var_j   = W_j Sigma W_j^T          for each of the T d rows j
        scale_t = gamma_t / sqrt(var_t + eps)
        M_t[b]  = W_t^T (scale_t * q_t[b])
        content[b, t, s] = <M_t[b], k_s[b] - kbar> + <shift_t, q_t[b]>

    Returns content (B, T, S), var (T d, ) and kbar (d, ), the last two
    without gradient (for BN's running statistics). Every (rows, d) or
    (B, T, d) temporary is formed a chunk at a time (``_chunks``), and
    only the inputs, Sigma and var are kept: the backward forms k - kbar,
    scale * q and M again. All of W's gradient, from the content and from
    var, is written into one (T d, d) tensor.
    """

    @staticmethod
    def forward(ctx, queries, keys, weight, gamma, shift, eps):
        batch, num_t, d = queries.shape
        centred, mean = _centred(keys)  # (B, S, d), (d, )
        flat = centred.view(-1, d)
        cov = flat.t() @ flat / flat.shape[0]  # (d, d)
        var = weight.new_empty(weight.shape[0])  # (T d, )
        for rows in _chunks(weight.shape[0], d):
            w = weight[rows]
            torch.sum((w @ cov).mul_(w), dim=1, out=var[rows])
        scale = gamma * torch.rsqrt(var + eps).view(num_t, d)  # (T, d)
        weight_t = weight.view(num_t, d, d)  # (T, d_out, d_in)
        content = queries.new_empty(batch, num_t, keys.shape[1])
        keys_t = centred.transpose(1, 2)  # (B, d, S)
        for ts in _chunks(num_t, batch * d):
            q = queries[:, ts]  # (B, n, d)
            mapped = torch.bmm((q * scale[ts]).transpose(0, 1),
                               weight_t[ts])  # (n, B, d)
            part = torch.bmm(mapped.transpose(0, 1), keys_t)  # (B, n, S)
            content[:, ts] = part.add_((q * shift[ts]).sum(2, keepdim=True))
        ctx.eps = eps
        ctx.save_for_backward(queries, keys, cov, weight, gamma, shift, var)
        ctx.mark_non_differentiable(var, mean)
        return content, var, mean

    @staticmethod
    @once_differentiable
    def backward(ctx, grad, *_):
        queries, keys, cov, weight, gamma, shift, var = ctx.saved_tensors
        batch, num_t, d = queries.shape
        centred, _ = _centred(keys)  # (B, S, d)
        invstd = torch.rsqrt(var + ctx.eps).view(num_t, d)  # (T, d)
        scale = gamma * invstd
        weight_t = weight.view(num_t, d, d)
        grad_weight = torch.empty_like(weight_t)  # (T, d, d)
        grad_queries = torch.empty_like(queries)  # (B, T, d)
        grad_keys = torch.zeros_like(keys)  # (B, S, d), wrt k - kbar
        grad_scale = torch.empty_like(scale)  # (T, d)
        grad_shift = torch.empty_like(shift)
        for ts in _chunks(num_t, batch * d):
            g, q = grad[:, ts], queries[:, ts]  # (B, n, S), (B, n, d)
            scaled = (q * scale[ts]).transpose(0, 1)  # (n, B, d)
            mapped = torch.bmm(scaled, weight_t[ts])  # (n, B, d)
            grad_keys.baddbmm_(g.transpose(1, 2), mapped.transpose(0, 1))
            del mapped
            grad_mapped = torch.bmm(g, centred).transpose(0, 1)  # (n, B, d)
            torch.bmm(scaled.transpose(1, 2), grad_mapped,
                      out=grad_weight[ts])  # (n, d, d)
            del scaled
            grad_scaled = torch.bmm(grad_mapped, weight_t[ts].transpose(
                1, 2)).transpose(0, 1)  # (B, n, d)
            del grad_mapped
            row = g.sum(dim=2, keepdim=True)  # (B, n, 1)
            grad_scale[ts] = (grad_scaled * q).sum(dim=0)
            grad_shift[ts] = (row * q).sum(dim=0)
            grad_queries[:, ts] = grad_scaled.mul_(scale[ts]).addcmul_(
                row, shift[ts])
        # scale = gamma (var + eps)^(-1/2)
        grad_gamma = grad_scale * invstd
        grad_var = grad_scale.mul_(gamma).mul_(invstd.pow(3)).mul_(-0.5)
        grad_var = grad_var.view(-1, 1)  # (T d, 1)
        grad_weight = grad_weight.view(-1, d)  # (T d, d)
        flat = centred.view(-1, d)
        cov = cov.to(weight.dtype)  # bfloat16 / float16 under autocast
        grad_cov = torch.zeros_like(cov)
        for rows in _chunks(weight.shape[0], d):  # d var_j = 2 W_j Sigma dW_j
            w, gv = weight[rows], grad_var[rows]
            grad_cov.addmm_((w * gv).t(), w)
            grad_weight[rows].addcmul_(w @ cov, gv, value=2)
        # Sigma = (k - kbar)^T (k - kbar) / N with a symmetric grad_cov,
        # then the centring's backward: minus the mean over the N keys
        grad_flat = grad_keys.view(-1, d).addmm_(
            flat, grad_cov, alpha=2 / flat.shape[0])
        grad_flat.sub_(grad_flat.mean(dim=0))
        return (grad_queries, grad_keys, grad_weight, grad_gamma, grad_shift,
                None)


def _centred(keys):
    """keys (B, S, d) minus their mean over the B * S rows, and the mean."""
    mean = keys.mean(dim=(0, 1))  # (d, )
    return keys - mean, mean


def _candidate_columns(t, idx):
    """Candidates ``idx`` of t (B, N, d) as an (n, B, d) view, or None when
    they are not consecutive."""
    if idx != list(range(idx[0], idx[0] + len(idx))):
        return None
    return t[:, idx[0]:idx[0] + len(idx)].transpose(0, 1)


class _Embeddings(torch.autograd.Function):
    """``CandidateEmbedding`` in training: every group's BN1d(Linear(x))
    from batch statistics (+ ReLU), written into one (B, N, d) tensor.

    Autograd of the same ops keeps each group's centred Linear output and
    its normalised copy for the backward, and the output is copied twice
    more (concatenated, and made contiguous for the bilinear layer). This
    keeps the inputs, the inverse standard deviations and the output
    itself, and the backward forms the centred Linear output again (one
    small batched matrix product). The running statistics are updated
    here, as ``nn.BatchNorm1d`` does.

    ``apply(module, x_1, weight_1, bias_1, gamma_1, beta_1, x_2, ...)``
    with one (x (n, B, C), weight (n, d, C), bias, gamma, beta (n, d))
    per group of ``module.index``, in its order.
    """

    @staticmethod
    def forward(ctx, module, *inputs):
        groups = list(module.index.values())
        batch = inputs[0].shape[1]
        out = inputs[0].new_empty(batch, len(module.channels),
                                  module.embed_dim)  # (B, N, d)
        invstds = []
        for k, (c, idx) in enumerate(module.index.items()):
            x, weight, bias, gamma, beta = inputs[5 * k:5 * k + 5]
            z = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
            mean = z.mean(dim=1, keepdim=True)  # (n, 1, d)
            z = z.sub_(mean)  # (n, B, d)
            var = torch.mul(z, z).sum(dim=1).div_(batch)  # (n, d), biased
            # (vector_norm over dim 1 is ten times slower on CPU)
            module._update_running_stats(c, mean.squeeze(1), var, batch)
            invstd = torch.rsqrt(var + module.eps)  # (n, d)
            invstds.append(invstd)
            scale, shift = (gamma * invstd).unsqueeze(1), beta.unsqueeze(1)
            columns = _candidate_columns(out, idx)
            if columns is not None:
                torch.addcmul(shift, z, scale, out=columns)
            else:
                out.index_copy_(1, torch.tensor(idx, device=out.device),
                                torch.addcmul(shift, z, scale).transpose(
                                    0, 1))
        if module.relu:
            out.relu_()
        ctx.groups, ctx.relu = groups, module.relu
        ctx.save_for_backward(out, *inputs, *invstds)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        out, *saved = ctx.saved_tensors
        num = len(ctx.groups)
        inputs, invstds = saved[:5 * num], saved[5 * num:]
        if ctx.relu:
            grad = grad * (out > 0)
        batch = out.shape[0]
        grads = [None]  # the module
        for k, idx in enumerate(ctx.groups):
            x, weight, _, gamma, _ = inputs[5 * k:5 * k + 5]
            invstd = invstds[k]
            g = _candidate_columns(grad, idx)
            if g is None:
                g = grad.index_select(
                    1, torch.tensor(idx, device=grad.device)).transpose(0, 1)
            grad_beta = g.sum(dim=1)  # (n, d)
            xhat = torch.bmm(x, weight.transpose(1, 2))  # (n, B, d)
            xhat = xhat.sub_(xhat.mean(dim=1, keepdim=True)).mul_(
                invstd.unsqueeze(1))  # the bias cancels in the centring
            grad_gamma = (g * xhat).sum(dim=1)  # (n, d)
            # dL/dz = gamma invstd (g - mean_B g - xhat mean_B(g xhat))
            grad_z = xhat.mul_((grad_gamma / -batch).unsqueeze(1)).add_(g)
            grad_z = grad_z.sub_((grad_beta / batch).unsqueeze(1)).mul_(
                (gamma * invstd).unsqueeze(1))  # (n, B, d)
            grad_x = None
            if ctx.needs_input_grad[1 + 5 * k]:
                grad_x = torch.bmm(grad_z, weight)  # (n, B, C)
            grads += [grad_x, torch.bmm(grad_z.transpose(1, 2), x),
                      grad_z.sum(dim=1), grad_gamma, grad_beta]
        return tuple(grads)


class CandidateEmbedding(nn.Module):
    """Linear + BN1d (+ ReLU) of its own for each of N candidates.

    Candidate i maps its descriptor (B, C_i) to (B, d) with
    BN1d(Linear_i(x)) (ReLU after it for keys), exactly as N separate
    ``nn.Sequential(nn.Linear(C_i, d), nn.BatchNorm1d(d)[, nn.ReLU()])``
    would, with PyTorch's initialisation of those modules. The N layers
    are stored stacked, one set of tensors per distinct C: candidates of
    equal C run as one batched matrix product and one normalisation, and
    the optimizer sees a few tensors instead of four per candidate. In
    training all groups are one autograd node (``_Embeddings``) that
    writes every embedding into one (B, N, d) tensor and keeps only its
    inputs and that output for the backward.

    For the candidates of width C (in network order, ``self.index[C]``),
    ``c{C}_weight`` (n, d, C) and ``c{C}_bias`` (n, d) are the Linear layers,
    ``c{C}_gamma`` and ``c{C}_beta`` (n, d) the BN affine parameters and
    the ``c{C}_running_mean`` / ``c{C}_running_var`` buffers (n, d) the BN
    statistics (momentum 0.1, eps 1e-5, BN1d's defaults). Training uses
    batch statistics (biased variance) and updates the running ones with
    the unbiased variance; eval mode (``.eval()``, e.g. a frozen
    meta-network) uses the running ones.

    Args:
        channels (list[int]): C_i of every candidate, in network order.
        embed_dim (int): d.
        relu (bool): ReLU after the BN (keys). Default: False (queries).
    """

    momentum = 0.1
    eps = 1e-5

    def __init__(self, channels, embed_dim, relu=False):
        super().__init__()
        self.channels = [int(c) for c in channels]
        self.embed_dim = embed_dim
        self.relu = relu
        self.index = {}  # C -> candidate positions, first-seen order
        for i, c in enumerate(self.channels):
            self.index.setdefault(c, []).append(i)
        order = [i for idx in self.index.values() for i in idx]
        # position of candidate i in the grouped order, None if in order
        self._inverse = (None if order == sorted(order) else
                         torch.argsort(torch.tensor(order)).tolist())
        for c, idx in self.index.items():
            n, d = len(idx), embed_dim
            self.register_parameter(
                f'c{c}_weight', nn.Parameter(torch.empty(n, d, c)))
            self.register_parameter(
                f'c{c}_bias', nn.Parameter(torch.empty(n, d)))
            self.register_parameter(
                f'c{c}_gamma', nn.Parameter(torch.ones(n, d)))
            self.register_parameter(
                f'c{c}_beta', nn.Parameter(torch.zeros(n, d)))
            self.register_buffer(f'c{c}_running_mean', torch.zeros(n, d))
            self.register_buffer(f'c{c}_running_var', torch.ones(n, d))
        self.register_buffer('num_batches_tracked',
                             torch.tensor(0, dtype=torch.long))
        self.reset_parameters()

    def reset_parameters(self):
        """nn.Linear's init per candidate: U(-1/sqrt(C), 1/sqrt(C))."""
        for c in self.index:
            bound = 1 / math.sqrt(c)
            nn.init.uniform_(getattr(self, f'c{c}_weight'), -bound, bound)
            nn.init.uniform_(getattr(self, f'c{c}_bias'), -bound, bound)

    def init_xavier(self):
        """Xavier-normal Linear weights (fan C + d) and zero biases."""
        for c in self.index:
            std = math.sqrt(2 / (c + self.embed_dim))
            nn.init.normal_(getattr(self, f'c{c}_weight'), 0, std)
            nn.init.zeros_(getattr(self, f'c{c}_bias'))

    def layer(self, i):
        """Candidate i's (weight (d, C), bias, gamma, beta) views."""
        c = self.channels[i]
        j = self.index[c].index(i)
        return tuple(getattr(self, f'c{c}_{name}')[j]
                     for name in ('weight', 'bias', 'gamma', 'beta'))

    def forward(self, descs):
        """Every candidate's embedding.

        Args:
            descs (list[Tensor]): N tensors (B, C_i).

        Returns:
            Tensor: (B, N, d), candidates in network order.
        """
        if len(descs) != len(self.channels):
            raise ValueError(
                f'CandidateEmbedding was built for {len(self.channels)} '
                f'candidates but got {len(descs)} descriptors.')
        batch = descs[0].shape[0]
        if self.training and batch < 2:
            raise ValueError(
                'The meta-network normalises over the batch in training '
                f'and needs at least 2 samples, got {batch}; use a larger '
                'batch, or put the AFD loss in eval mode.')
        xs = []
        for c, idx in self.index.items():
            x = torch.stack([descs[i] for i in idx])  # (n, B, C)
            if x.shape[-1] != c:
                raise ValueError(
                    f'CandidateEmbedding expects C={c} for candidates {idx}'
                    f', got a descriptor of shape {tuple(x.shape[1:])}.')
            xs.append(x)
        if self.training:
            self.num_batches_tracked.add_(1)
            tensors = []
            for c, x in zip(self.index, xs):
                tensors += [x] + [getattr(self, f'c{c}_{name}') for name in
                                  ('weight', 'bias', 'gamma', 'beta')]
            return _Embeddings.apply(self, *tensors)  # (B, N, d)
        out = torch.cat([self._embed(c, x) for c, x in zip(self.index, xs)])
        if self._inverse is not None:  # (N, B, d), grouped order
            out = out[self._inverse]
        return out.transpose(0, 1)  # (B, N, d)

    def _embed(self, c, x):
        """Eval mode: BN1d(Linear(x)) (+ ReLU) from the running statistics,
        (n, B, d)."""
        weight = getattr(self, f'c{c}_weight')  # (n, d, C)
        bias = getattr(self, f'c{c}_bias')  # (n, d)
        x = torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))
        x = x - getattr(self, f'c{c}_running_mean').unsqueeze(1)
        var = getattr(self, f'c{c}_running_var')
        scale = getattr(self, f'c{c}_gamma') * torch.rsqrt(var + self.eps)
        x = torch.addcmul(getattr(self, f'c{c}_beta').unsqueeze(1), x,
                          scale.unsqueeze(1))  # (n, B, d)
        return x.relu() if self.relu else x

    @torch.no_grad()
    def _update_running_stats(self, c, mean, var, rows):
        """BN1d's update: momentum 0.1, unbiased variance."""
        running_mean = getattr(self, f'c{c}_running_mean')
        running_var = getattr(self, f'c{c}_running_var')
        running_mean.lerp_(mean.to(running_mean.dtype), self.momentum)
        running_var.lerp_((var * (rows / (rows - 1))).to(running_var.dtype),
                          self.momentum)

    # one candidate's layers in the earlier layout, ModuleList of
    # Sequential(Linear, BatchNorm1d[, ReLU]): key suffix -> stacked name
    _PER_CANDIDATE_KEYS = {
        '0.weight': 'weight', '0.bias': 'bias', '1.weight': 'gamma',
        '1.bias': 'beta', '1.running_mean': 'running_mean',
        '1.running_var': 'running_var'
    }

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Also read checkpoints of the per-candidate layout.

        afd_mm checkpoints written before the layers were stacked hold
        ``<prefix><i>.0.weight`` etc. for each candidate i; they are
        stacked into this layout here, so such a run resumes with its
        meta-network instead of a fresh one.
        """
        if f'{prefix}0.0.weight' in state_dict:
            for c, idx in self.index.items():
                for old, new in self._PER_CANDIDATE_KEYS.items():
                    state_dict[f'{prefix}c{c}_{new}'] = torch.stack(
                        [state_dict.pop(f'{prefix}{i}.{old}') for i in idx])
            counts = [state_dict.pop(f'{prefix}{i}.1.num_batches_tracked')
                      for i in range(len(self.channels))]
            state_dict[f'{prefix}num_batches_tracked'] = counts[0]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self):
        groups = ', '.join(f'{len(idx)} x C={c}'
                           for c, idx in self.index.items())
        relu = ', relu' if self.relu else ''
        return f'{groups} -> d={self.embed_dim}{relu}'


def _ordered_indices(num_t, num_s):
    """Student linked to teacher t: round(t (S - 1) / (T - 1)), halves up."""
    if num_t == 1:
        return [num_s - 1]
    return [(2 * t * (num_s - 1) + num_t - 1) // (2 * (num_t - 1))
            for t in range(num_t)]


def _load_links(path, num_t, num_s):
    """A (T, S) link matrix from a .pt or .npy file, rows summing to 1."""
    if path is None:
        raise ValueError(
            "links='fixed' needs a file: set the `links_file` key of AFDLoss "
            f'to a .pt or .npy file holding a {num_t} x {num_s} link matrix.')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'links_file {path!r} does not exist; set the `links_file` key '
            f'of AFDLoss to a .pt or .npy file holding a {num_t} x {num_s} '
            f'link matrix.')
    if path.endswith('.pt') or path.endswith('.pth'):
        links = load_checkpoint_file(path, key='links_file')
    elif path.endswith('.npy'):
        links = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        raise ValueError(
            f'links_file {path!r} has an unknown extension; use a .pt, .pth '
            f'or .npy file (the `links_file` key of AFDLoss).')
    if not isinstance(links, torch.Tensor):
        raise ValueError(
            f'links_file {path!r} holds a {type(links).__name__}, expected '
            f'a {num_t} x {num_s} tensor; point the `links_file` key of '
            f'AFDLoss to a saved link matrix.')
    if tuple(links.shape) != (num_t, num_s):
        raise ValueError(
            f'links_file {path!r} holds a matrix of shape '
            f'{tuple(links.shape)}, expected T x S = {num_t} x {num_s} '
            f'(teacher x student candidates); change the `links_file` key '
            f'of AFDLoss or the recorders so the counts match.')
    links = links.double()
    rows = links.sum(dim=1, keepdim=True)  # (T, 1)
    if (links < 0).any() or (rows <= 0).any():
        raise ValueError(
            f'links_file {path!r} must hold non-negative weights with a '
            f'positive sum in every row; change the `links_file` key of '
            f'AFDLoss.')
    return (links / rows).float()  # (T, S)


def fixed_links(mode, num_t, num_s, seed=0, path=None):
    """A constant link matrix for the linking ablations (paper Table 4).

    Args:
        mode (str): 'ordered': teacher t linked one-hot to the proportional
            student round(t (S - 1) / (T - 1)) (halves round up; T = 1
            links to the last student). 'random': each teacher linked
            one-hot to a student drawn once from a ``torch.Generator``
            seeded with ``seed``. 'fixed': the matrix saved in ``path``
            (.pt read with ``weights_only`` and our allow-list, or .npy),
            rows renormalised to sum to 1.
        num_t (int): T, the number of teacher candidates.
        num_s (int): S, the number of student candidates.
        seed (int): seed of the 'random' draw. Default: 0.
        path (str, optional): the file read by 'fixed'.

    Returns:
        Tensor: (T, S), float32, rows summing to 1.
    """
    if mode == 'fixed':
        return _load_links(path, num_t, num_s)
    if mode == 'ordered':
        indices = torch.tensor(_ordered_indices(num_t, num_s))
    elif mode == 'random':
        generator = torch.Generator().manual_seed(seed)
        indices = torch.randint(num_s, (num_t, ), generator=generator)
    else:
        raise ValueError(
            f'links={mode!r} is not a fixed-link mode; choose one of '
            f'{FIXED_LINKS} (the `links` key of AFDLoss).')
    return nn.functional.one_hot(indices, num_s).float()  # (T, S)


class FixedLinks(nn.Module):
    """Constant link weights, the same for every sample (ablations).

    Drop-in replacement for ``AFDAttention``: same forward arguments, same
    output shape, no parameters. The matrix is a non-persistent buffer: it
    is rebuilt from the config, never read from a checkpoint.

    Args:
        mode (str): 'ordered', 'random' or 'fixed'; see ``fixed_links``.
        num_t (int): T, the number of teacher candidates.
        num_s (int): S, the number of student candidates.
        seed (int): seed of the 'random' draw. Default: 0.
        path (str, optional): the .pt/.npy file read by 'fixed'. Default:
            None.
    """

    def __init__(self, mode, num_t, num_s, seed=0, path=None):
        super().__init__()
        self.mode = mode
        self.register_buffer(
            'links', fixed_links(mode, num_t, num_s, seed, path),
            persistent=False)  # (T, S)

    def forward(self, teacher_feats, student_feats):
        """The constant link matrix broadcast over the batch.

        Args:
            teacher_feats (list[Tensor]): T tensors, (B, ...); only B is
                read.
            student_feats (list[Tensor]): S tensors, (B, ...); unused.

        Returns:
            Tensor: alpha (B, T, S), a broadcast view without gradient.
        """
        batch = teacher_feats[0].shape[0]
        return self.links.expand(batch, -1, -1)  # (B, T, S)
