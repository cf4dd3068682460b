"""Who distils into whom: the link weights alpha (B, T, S) (spec section 2).

Symbols: B batch, T teacher candidates, S student candidates, d embedding
size (128), C channels of a candidate.

* ``AFDAttention``: the meta-network, alpha computed per sample and trained
  jointly with the student (the paper's default, "AFD co-trained").
* ``FixedLinks``: a constant alpha for the linking ablations (Table 4):
  'ordered', 'random' and 'fixed' (frozen links of an earlier run), built by
  the pure function ``fixed_links``.
"""
import math
import os.path as osp

import numpy as np
import torch
from torch import nn

from afd_mm.utils.checkpoint import load_checkpoint_file

from .distance import global_descriptor

__all__ = [
    'LINEAR_INITS', 'FIXED_LINKS', 'link_logits', 'AFDAttention',
    'fixed_links', 'FixedLinks'
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
    bilinear BN's statistics pool over the B * S keys. In training the
    forward computes exactly what these modules would, faster: the query
    and key layers batched over candidates of equal C, and the bilinear
    layer + BN + dot product factorised so that the (B, S, T, d) bilinear
    keys are never formed (``_content_factorised``); ``bilinear_keys``
    still forms them, for inspection. Parameters:
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
        self.query_layers = nn.ModuleList(
            nn.Sequential(nn.Linear(c, d), nn.BatchNorm1d(d))
            for c in teacher_channels)
        self.key_layers = nn.ModuleList(
            nn.Sequential(nn.Linear(c, d), nn.BatchNorm1d(d), nn.ReLU())
            for c in student_channels)
        self.bilinear = nn.Sequential(
            nn.Linear(d, num_t * d), nn.BatchNorm1d(num_t * d))
        self.pos_t = nn.Parameter(torch.empty(num_t, d))
        self.pos_s = nn.Parameter(torch.empty(len(student_channels), d))
        nn.init.xavier_normal_(self.pos_t)
        nn.init.xavier_normal_(self.pos_s)
        if linear_init == 'xavier':
            self._init_linear_xavier()

    def _init_linear_xavier(self):
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def queries(self, teacher_feats):
        """q_t for every teacher candidate.

        Args:
            teacher_feats (list[Tensor]): T tensors (B, C_t, H, W) or
                (B, C_t).

        Returns:
            Tensor: (B, T, d).
        """
        return self._embed(self.query_layers, teacher_feats)  # (B, T, d)

    def keys(self, student_feats):
        """k_s for every student candidate.

        Args:
            student_feats (list[Tensor]): S tensors (B, C_s, H, W) or
                (B, C_s).

        Returns:
            Tensor: (B, S, d).
        """
        return self._embed(self.key_layers, student_feats)  # (B, S, d)

    def _embed(self, layers, feats):
        """Each candidate's layer applied to its g(h): (B, N, d).

        In training, candidates of equal C go through their Linear + BN1d
        (+ ReLU) layers as one batched op (``_embed_group``) instead of a
        loop over candidates; the result is the same.
        """
        descs = [global_descriptor(h) for h in feats]  # N x (B, C)
        if not all(_groupable(layer, self.training, len(descs[0]))
                   for layer in layers):
            return torch.stack(
                [layer(g) for layer, g in zip(layers, descs)], dim=1)
        groups = {}  # (C, BN eps) -> candidates
        for i, (g, layer) in enumerate(zip(descs, layers)):
            groups.setdefault((g.shape[1], layer[1].eps), []).append(i)
        out, order = [], []
        for idx in groups.values():
            out.append(_embed_group([layers[i] for i in idx],
                                    [descs[i] for i in idx]))  # (B, n, d)
            order += idx
        out = torch.cat(out, dim=1)  # (B, N, d), grouped order
        if order != sorted(order):
            out = out[:, torch.argsort(torch.tensor(order, device=out.device))]
        return out  # (B, N, d)

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
        flat = keys.reshape(b * num_s, d)  # (N, d)
        mean = flat.mean(dim=0)  # (d, )
        centred = flat - mean  # (N, d)
        cov = centred.t() @ centred / (b * num_s)  # (d, d)
        var = ((linear.weight @ cov) * linear.weight).sum(dim=1)  # (T * d, )
        _update_running_stats([bn], (linear.weight @ mean + linear.bias)[None],
                              var[None], b * num_s)
        scale = (bn.weight * torch.rsqrt(var + bn.eps)).view(num_t, d)
        # the Linear bias cancels against the batch mean; (c - c) keeps it
        # in the graph, so it gets its (zero) gradient and weight decay as
        # in the unfactorised layer
        shift = (bn.bias + (linear.bias - linear.bias)).view(num_t, d)
        weight = linear.weight.view(num_t, d, d)  # (T, d_out, d_in)
        mapped = torch.einsum('btd,tde->bte', queries * scale,
                              weight)  # (B, T, d)
        content = mapped @ centred.view(b, num_s, d).transpose(1, 2)
        return content + (queries * shift).sum(dim=2, keepdim=True)

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
        return logits.softmax(dim=2)  # (B, T, S)


def _plain_bn(bn, training, rows):
    """A standard BN1d in training over more than one row.

    Its output is then computed here from batch statistics (factorised or
    batched over candidates); anything else (eval mode, SyncBN, a batch of
    one, which BN itself rejects) runs the module itself.
    """
    return (training and bn.training and type(bn) is nn.BatchNorm1d
            and bn.affine
            and bn.track_running_stats and rows > 1)


def _groupable(layer, training, rows):
    """A query/key layer ``_embed_group`` can batch: Linear, BN1d[, ReLU]."""
    return (isinstance(layer, nn.Sequential) and len(layer) in (2, 3)
            and type(layer[0]) is nn.Linear and layer[0].bias is not None
            and type(layer[1]) is nn.BatchNorm1d
            and _plain_bn(layer[1], training, rows)
            and (len(layer) == 2 or type(layer[2]) is nn.ReLU))


def _embed_group(layers, descs):
    """Linear + training-mode BN1d (+ ReLU) of n candidates of equal C.

    One batched matrix product and one normalisation for the n layers,
    each with its own weights and statistics, instead of n modules. The
    BN layers must share their eps.

    Args:
        layers (list[nn.Sequential]): the n candidates' layers.
        descs (list[Tensor]): their inputs g(h), each (B, C).

    Returns:
        Tensor: (B, n, d).
    """
    linears = [layer[0] for layer in layers]
    bns = [layer[1] for layer in layers]  # all with the same eps
    weight = torch.stack([lin.weight for lin in linears])  # (n, d, C)
    bias = torch.stack([lin.bias for lin in linears])  # (n, d)
    x = torch.baddbmm(bias.unsqueeze(1), torch.stack(descs),
                      weight.transpose(1, 2))  # (n, B, d)
    mean = x.mean(dim=1, keepdim=True)  # (n, 1, d)
    centred = x - mean  # (n, B, d)
    var = centred.pow(2).mean(dim=1)  # (n, d), biased as in BN
    _update_running_stats(bns, mean.squeeze(1), var, x.shape[1])
    gamma = torch.stack([bn.weight for bn in bns])  # (n, d)
    beta = torch.stack([bn.bias for bn in bns])  # (n, d)
    scale = gamma * torch.rsqrt(var + bns[0].eps)  # (n, d)
    out = torch.addcmul(beta.unsqueeze(1), centred, scale.unsqueeze(1))
    if len(layers[0]) == 3:
        out = out.relu()
    return out.transpose(0, 1)  # (B, n, d)


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
