"""Read a CandidateEmbedding's per-candidate layers, for reference tests."""


def candidate_layer(emb, i, grad=False):
    """Candidate i's (weight (d, C), bias, gamma, beta) in a
    CandidateEmbedding, read from its group (their gradients with
    ``grad=True``), and its BN's (running_mean, running_var)."""
    k = next(k for k, idx in enumerate(emb.index) if i in idx)
    j, group = emb.index[k].index(i), emb.groups[k]
    d = group.weight.shape[1]
    rows = slice(j * d, (j + 1) * d)
    params = [group.weight, group.bias, group.bn.weight, group.bn.bias]
    if grad:
        params = [p.grad for p in params]
    params = [params[0][j], params[1][j], params[2][rows], params[3][rows]]
    return params, (group.bn.running_mean[rows], group.bn.running_var[rows])
