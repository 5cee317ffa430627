"""``solver.short_sums``: sums over short dimensions slice by slice are bitwise torch's own sums (the
solver's iterates must not change with the faster form), longer dimensions go to torch."""
from __future__ import annotations

import pytest
import torch

from solver.short_sums import SHORT, inner, total


@pytest.mark.parametrize("length", [1, 2, 3, 4])
@pytest.mark.parametrize("dim", [-1, -2, 0])
def test_short_dimensions_sum_bitwise_as_torch(length, dim):
    """Random values over 16 orders of magnitude (so any other order of the additions would round
    differently somewhere among 20,000 sums): equal to the last bit."""
    g = torch.Generator().manual_seed(length)
    shape = [50, 40, 5, 2]
    shape[dim] = length
    x = torch.randn(shape, generator=g, dtype=torch.float64) * torch.logspace(-8, 8, 40, dtype=torch.float64)[:, None, None]
    assert torch.equal(total(x, dim), x.sum(dim))


def test_longer_dimensions_and_inner_products():
    """Beyond SHORT entries torch sums (its partial sums differ from index order in the last bits);
    ``inner`` is the sum of products over the last dimension, broadcasting the others."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, SHORT + 3, generator=g, dtype=torch.float64)
    assert torch.equal(total(x), x.sum(-1))
    a, b = torch.randn(30, 1, 2, generator=g, dtype=torch.float64), torch.randn(4, 2, generator=g, dtype=torch.float64)
    assert torch.equal(inner(a, b), (a * b).sum(-1)) and inner(a, b).shape == (30, 4)
    # gradients flow through the slices as through sum
    y = a.clone().requires_grad_(True)
    inner(y, y).sum().backward()
    assert torch.equal(y.grad, 2 * a)
