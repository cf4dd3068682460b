"""Read a CandidateEmbedding's per-candidate layers, for reference tests."""


def candidate_layer(emb, i, grad=False):
    """Candidate i's (weight (d, C), bias, gamma, beta) in a
    CandidateEmbedding, read from its group (their gradients with
    ``grad=True``), and its BN's (running_mean, running_var)."""
    k = next(k for k, idx in enumerate(emb.index) if i in idx)
    j, conv, bn = emb.index[k].index(i), emb.linears[k], emb.bn
    d = conv.out_channels // conv.groups
    rows, own = slice(j * d, (j + 1) * d), slice(i * d, (i + 1) * d)
    params = [conv.weight, conv.bias, bn.weight, bn.bias]
    if grad:
        params = [p.grad for p in params]
    params = [params[0][rows, :, 0], params[1][rows], params[2][own],
              params[3][own]]
    return params, (bn.running_mean[own], bn.running_var[own])
