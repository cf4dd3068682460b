"""Read a CandidateEmbedding's per-candidate layers, for reference tests."""


def candidate_layer(emb, i, grad=False):
    """Candidate i's (weight (d, C), bias, gamma, beta) in a
    CandidateEmbedding, read from its group (their gradients with
    ``grad=True``), and its BN's (running_mean, running_var)."""
    k = next(k for k, idx in enumerate(emb.index) if i in idx)
    j, (conv, bn) = emb.index[k].index(i), emb.groups[k]
    d = conv.out_channels // conv.groups
    rows = slice(j * d, (j + 1) * d)
    params = [conv.weight, conv.bias, bn.weight, bn.bias]
    if grad:
        params = [p.grad for p in params]
    params = [params[0][rows, :, 0]] + [p[rows] for p in params[1:]]
    return params, (bn.running_mean[rows], bn.running_var[rows])
