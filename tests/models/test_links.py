"""Tests of afd_mm.models.links: the links that are not learnt."""
import numpy as np
import pytest
import torch

from afd_mm.models.links import FixedLinks, fixed_links


def _descs(channels, batch=4):
    return [torch.randn(batch, c) for c in channels]


def test_ordered_links_r56_r20():
    links = fixed_links('ordered', 27, 9)
    expected = [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6,
                6, 6, 7, 7, 7, 8, 8]
    assert links.shape == (27, 9)
    assert links.argmax(dim=1).tolist() == expected
    assert torch.equal(links.sum(dim=1), torch.ones(27))


@pytest.mark.parametrize('num_t, num_s, expected', [
    (1, 3, [2]),  # a single teacher links to the last student
    (3, 2, [0, 1, 1]),  # t = 1 gives 0.5: halves round up
    (3, 1, [0, 0, 0]),
    (2, 4, [0, 3]),
])
def test_ordered_links_edge_cases(num_t, num_s, expected):
    assert fixed_links('ordered', num_t, num_s).argmax(1).tolist() == expected


def test_random_links_reproducible_one_hot():
    first = fixed_links('random', 27, 9, seed=3)
    assert torch.equal(first, fixed_links('random', 27, 9, seed=3))
    assert not torch.equal(first, fixed_links('random', 27, 9, seed=4))
    assert torch.equal(first.sum(dim=1), torch.ones(27))
    assert set(first.unique().tolist()) == {0., 1.}
    generator = torch.Generator().manual_seed(3)
    drawn = torch.randint(9, (27, ), generator=generator)
    assert first.argmax(dim=1).tolist() == drawn.tolist()


@pytest.mark.parametrize('suffix', ['.pt', '.npy'])
def test_fixed_links_from_file_rows_renormalised(tmp_path, suffix):
    matrix = torch.tensor([[1., 3.], [2., 2.], [0., 5.]])
    path = str(tmp_path / f'alpha{suffix}')
    if suffix == '.pt':
        torch.save(matrix, path)
    else:
        np.save(path, matrix.numpy())
    links = fixed_links('fixed', 3, 2, path=path)
    expected = torch.tensor([[0.25, 0.75], [0.5, 0.5], [0., 1.]])
    assert links.dtype == torch.float32
    assert torch.allclose(links, expected)


def test_fixed_links_wrong_shape_message(tmp_path):
    path = str(tmp_path / 'alpha.pt')
    torch.save(torch.rand(9, 27), path)
    with pytest.raises(ValueError) as info:
        fixed_links('fixed', 27, 9, path=path)
    message = str(info.value)
    assert path in message
    assert 'shape (9, 27), expected T x S = 27 x 9' in message
    assert '`links_file` key of AFDLoss' in message


def test_fixed_links_file_errors(tmp_path):
    with pytest.raises(ValueError, match=r"links='fixed' needs a file: set "
                       r'the `links_file` key of AFDLoss to a \.pt or \.npy '
                       r'file holding a 2 x 3 link matrix'):
        fixed_links('fixed', 2, 3)
    missing = str(tmp_path / 'missing.pt')
    with pytest.raises(FileNotFoundError, match=r'links_file .*missing\.pt'
                       r".* does not exist; set the `links_file` key"):
        fixed_links('fixed', 2, 3, path=missing)
    text = tmp_path / 'alpha.txt'
    text.write_text('1 0')
    with pytest.raises(ValueError, match=r'alpha\.txt.* has an unknown '
                       r'extension; use a \.pt, \.pth or \.npy file'):
        fixed_links('fixed', 2, 3, path=str(text))
    negative = str(tmp_path / 'negative.npy')
    np.save(negative, np.array([[1., -1.], [1., 1.]]))
    with pytest.raises(ValueError, match=r'negative\.npy.* must hold '
                       r'non-negative weights with a positive sum in every '
                       r'row; change the `links_file` key of AFDLoss'):
        fixed_links('fixed', 2, 2, path=negative)
    not_tensor = str(tmp_path / 'dict.pt')
    torch.save({'alpha': torch.ones(2, 2)}, not_tensor)
    with pytest.raises(ValueError, match=r'dict\.pt.* holds a dict, expected '
                       r'a 2 x 2 tensor'):
        fixed_links('fixed', 2, 2, path=not_tensor)


def test_fixed_links_unknown_mode_message():
    with pytest.raises(ValueError, match=r"links='afd' is not a fixed-link "
                       r"mode; choose one of \('ordered', 'random', "
                       r"'fixed'\) \(the `links` key of AFDLoss\)"):
        fixed_links('afd', 2, 2)


def test_fixed_links_module_broadcasts_without_parameters():
    module = FixedLinks('ordered', 3, 2)
    alpha = module(_descs([4, 4, 4], batch=5), _descs([3, 3], batch=5))
    assert alpha.shape == (5, 3, 2)
    assert torch.equal(alpha[4], fixed_links('ordered', 3, 2))
    assert list(module.parameters()) == []
    assert module.state_dict() == {}
