"""Who distils into whom: the link weights alpha (B, T, S) (spec section 2).

Symbols: B batch, T teacher candidates, S student candidates, d embedding
size (128), C channels of a candidate.

* ``AFDAttention``: the meta-network, alpha computed per sample and trained
  jointly with the student (the paper's default, "AFD co-trained").
* ``CandidateEmbedding``: its per-candidate Linear + BN1d layers, of the
  queries and the keys alike, candidates of equal C batched.

The links that are not learnt (the ablations of paper Table 4) are in
``links.py``.
"""
import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .distance import check_choice

__all__ = [
    'LINEAR_INITS', 'AFDAttention', 'CandidateEmbedding', 'bilinear_content'
]

LINEAR_INITS = ('default', 'xavier')


class CandidateEmbedding(nn.Module):
    """BN1d(Linear_i(x_i)) of its own for each of N candidates.

    The same as N separate ``nn.Sequential(nn.Linear(C_i, d),
    nn.BatchNorm1d(d))``, with the same initialisation,
    batched: the n candidates of one width C are one
    ``nn.Conv1d(n C, n d, 1, groups=n)`` in ``linears`` (n independent
    Linear(C, d) layers, with nn.Linear's init; ``index[k]`` are the
    network positions of the k-th width's candidates), and all N share one
    ``nn.BatchNorm1d(N d)`` (BN is per feature: features i d to (i + 1) d
    are candidate i's BN1d(d)), which SyncBN conversion reaches like any
    other.

    Args:
        channels (list[int]): C_i of every candidate, in network order.
        embed_dim (int): d.
    """

    def __init__(self, channels, embed_dim):
        super().__init__()
        self.channels = [int(c) for c in channels]
        widths = list(dict.fromkeys(self.channels))  # first-seen order
        self.index = [[i for i, c in enumerate(self.channels) if c == width]
                      for width in widths]
        self.linears = nn.ModuleList(
            nn.Conv1d(len(idx) * width, len(idx) * embed_dim, 1,
                      groups=len(idx))
            for width, idx in zip(widths, self.index))
        self.bn = nn.BatchNorm1d(len(self.channels) * embed_dim)
        order = [i for idx in self.index for i in idx]
        # network position -> position in the grouped order (None: equal)
        self.inverse = None if order == sorted(order) else [
            order.index(i) for i in range(len(order))]

    def init_xavier(self):
        """Xavier-normal Linear weights (fan C + d) and zero biases."""
        for conv in self.linears:
            d = conv.out_channels // conv.groups
            nn.init.normal_(conv.weight, 0,
                            math.sqrt(2 / (conv.weight.shape[1] + d)))
            nn.init.zeros_(conv.bias)

    def forward(self, descs):
        """Every candidate's embedding.

        Args:
            descs (list[Tensor]): N descriptors (B, C_i), network order.

        Returns:
            Tensor: (B, N, d).
        """
        batch, num = descs[0].shape[0], len(self.channels)
        x = torch.cat([
            linear(torch.cat([descs[i] for i in idx], dim=1).unsqueeze(2))
            for linear, idx in zip(self.linears, self.index)
        ], dim=1)  # (B, N d, 1), grouped order
        if self.inverse is not None:  # to network order
            x = x.view(batch, num, -1)[:, self.inverse].reshape(batch, -1, 1)
        return self.bn(x).view(batch, num, -1)  # (B, N, d)

    def extra_repr(self):
        return f'channels={self.channels}'


def bilinear_content(keys, queries, linear, bn):
    """<k_{s,t}[b], q_t[b]> with k_{s,t} = BN1d(Linear(k_s)) viewed per t.

    Explicitly: ``bn(linear(keys))`` reshaped to (B, S, T, d), then the dot
    product with q_t. In training with a standard BN1d the same values
    come without forming that (B, S, T, d) tensor: with x = W k + c (W
    viewed as (T, d, d)), BN's batch statistics over the N = B S keys are
    mean W kbar + c and variance diag(W Sigma W^T), Sigma the keys'
    biased covariance, so::

        <BN(x)_t, q_t> = <M_t, k - kbar> + <beta_t, q_t>,
        M_t = W_t^T (gamma_t / sqrt(var_t + eps) * q_t)

    and BN's running statistics are updated as its own forward would.
    Any other BN (eval mode, SyncBN, one row) runs the module itself.

    Args:
        keys (Tensor): k_s, (B, S, d).
        queries (Tensor): q_t, (B, T, d).
        linear (nn.Linear): d -> T d.
        bn (nn.BatchNorm1d): over T d features.

    Returns:
        Tensor: (B, T, S).
    """
    batch, num_s, d = keys.shape
    num_t = queries.shape[1]
    if not (type(bn) is nn.BatchNorm1d and bn.training and bn.affine
            and bn.track_running_stats and batch * num_s > 1):
        k_st = bn(linear(keys.flatten(0, 1))).view(batch, num_s, num_t, d)
        return torch.einsum('bstd,btd->bts', k_st, queries)  # (B, T, S)
    mean = keys.mean(dim=(0, 1))  # (d, )
    centred = keys - mean  # (B, S, d)
    flat = centred.flatten(0, 1)  # (N, d)
    cov = flat.t() @ flat / flat.shape[0]  # (d, d)
    weight = linear.weight.view(num_t, d, d)  # (T, d_out, d_in)
    # recomputed in the backward: keeps W Sigma (T, d, d) out of memory
    var = checkpoint(_projected_variance, weight, cov, use_reentrant=False,
                     preserve_rng_state=False)  # (T, d); it draws nothing
    scale = bn.weight.view(num_t, d) * torch.rsqrt(var + bn.eps)  # (T, d)
    # M_t[b] = W_t^T (scale_t * q_t[b]), batched over t
    mapped = torch.bmm((queries * scale).transpose(0, 1), weight)  # (T,B,d)
    content = torch.bmm(mapped.transpose(0, 1),
                        centred.transpose(1, 2))  # (B, T, S)
    # c cancels against the batch mean; (c - c) keeps it in the graph, so
    # it gets its zero gradient (and weight decay) as in the module
    shift = bn.bias + (linear.bias - linear.bias)  # (T d, )
    content = content + (queries * shift.view(num_t, d)).sum(
        dim=2, keepdim=True)  # (B, T, S)
    _track_batch_stats(bn, linear.weight @ mean + linear.bias,
                       var.flatten(), flat.shape[0])
    return content


def _projected_variance(weight, cov):
    """diag(W_t Sigma W_t^T) for every t: (T, d_out, d_in), (d, d) ->
    (T, d_out)."""
    return ((weight @ cov) * weight).sum(dim=2)


@torch.no_grad()
def _track_batch_stats(bn, mean, var, rows):
    """What ``nn.BatchNorm1d``'s training forward does to its buffers,
    given the batch mean and biased variance over ``rows`` rows."""
    bn.num_batches_tracked.add_(1)
    momentum = bn.momentum
    if momentum is None:  # cumulative moving average
        momentum = 1.0 / float(bn.num_batches_tracked)
    bn.running_mean.lerp_(mean.to(bn.running_mean.dtype), momentum)
    unbiased = var * (rows / (rows - 1))
    bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), momentum)


class AFDAttention(nn.Module):
    """AFD's meta-network: per-sample link weights between candidates.

    For every teacher candidate t a query q_t = BN1d(Linear_t(g(h_t)))
    (identity activation); for every student candidate s a key
    k_s = ReLU(BN1d(Linear_s(g(h_s)))). One shared bilinear layer
    BN1d(Linear(d -> T * d)) maps each key to T keys k_{s,t}. With learnt
    positional encodings P_T, P_S::

        logit[b, t, s] = (<k_{s,t}[b], q_t[b]> + (P_T P_S^T)[t, s]) / sqrt(d)
        alpha[b, t, :] = softmax over s of logit[b, t, :]

    The BN1d layers are standard (affine, batch statistics in training);
    the bilinear BN's statistics pool over the B * S keys. Parameters:
    sum_t (C_t + 3) d + sum_s (C_s + 3) d + (d + 3) T d + (T + S) d, e.g.
    643,200 for ResNet-56 -> ResNet-20 (spec section 2).

    Args:
        teacher_channels (list[int]): C of each of the T teacher candidates,
            in network order.
        student_channels (list[int]): C of each of the S student candidates,
            in network order.
        embed_dim (int): d. Default: 128 (paper and release).
        linear_init (str): 'default' keeps PyTorch's init of the Linear
            layers (the release); 'xavier' uses Xavier-normal weights and
            zero biases (the paper's appendix). P_T and P_S are
            Xavier-normal either way.
    """

    def __init__(self, teacher_channels, student_channels, embed_dim=128,
                 linear_init='default'):
        super().__init__()
        check_choice('linear_init', linear_init, LINEAR_INITS)
        d, num_t = embed_dim, len(teacher_channels)
        self.embed_dim = embed_dim
        # Linear_t + BN1d of every query, then Linear_s + BN1d of every key
        self.embedding = CandidateEmbedding(
            list(teacher_channels) + list(student_channels), d)
        self.bilinear = nn.Sequential(
            nn.Linear(d, num_t * d), nn.BatchNorm1d(num_t * d))
        self.pos_t = nn.Parameter(torch.empty(num_t, d))
        self.pos_s = nn.Parameter(torch.empty(len(student_channels), d))
        nn.init.xavier_normal_(self.pos_t)
        nn.init.xavier_normal_(self.pos_s)
        if linear_init == 'xavier':
            self.embedding.init_xavier()
            nn.init.xavier_normal_(self.bilinear[0].weight)
            nn.init.zeros_(self.bilinear[0].bias)

    def forward(self, g_t, g_s):
        """Link weights alpha, per sample.

        Args:
            g_t (list[Tensor]): T teacher descriptors g(h_t), (B, C_t), in
                network order.
            g_s (list[Tensor]): S student descriptors g(h_s), (B, C_s).

        Returns:
            Tensor: alpha (B, T, S); each row alpha[b, t] sums to 1.
        """
        x = self.embedding(list(g_t) + list(g_s))  # (B, T + S, d)
        queries = x[:, :len(g_t)]  # (B, T, d), identity activation
        keys = x[:, len(g_t):].relu()  # (B, S, d)
        content = bilinear_content(keys, queries, *self.bilinear)
        position = self.pos_t @ self.pos_s.t()  # (T, S)
        logits = (content + position) / math.sqrt(self.embed_dim)
        return logits.softmax(dim=2)  # (B, T, S)
