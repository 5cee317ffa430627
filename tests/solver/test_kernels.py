"""The blocked Gaussian pair sum against the dense formula, values and gradients."""
import pytest
import torch

from solver import kernels


def dense(x, z, a, b, s):
    d2 = ((x[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    return a @ torch.exp(-d2 / (2 * s * s)) @ b


@pytest.mark.parametrize("dim", [1, 2, 4])
def test_blocked_sum_matches_dense_with_many_blocks(monkeypatch, dim):
    monkeypatch.setattr(kernels.dense, "MEMORY_BUDGET", 37)  # forces ~40 row blocks and the blocked path
    gen = torch.Generator().manual_seed(dim)
    x = torch.randn(90, dim, dtype=torch.float64, generator=gen).requires_grad_(True)
    z = torch.randn(70, dim, dtype=torch.float64, generator=gen).requires_grad_(True)
    a, b = torch.rand(90, dtype=torch.float64, generator=gen), torch.rand(70, dtype=torch.float64, generator=gen)
    got = kernels.gaussian_pair_sum(x, z, a, b, 0.7)
    ref = dense(x, z, a, b, 0.7)
    g_got = torch.autograd.grad(got, (x, z))
    g_ref = torch.autograd.grad(ref, (x, z))
    # both are sums of ~6,000 positive terms in float64: agreement to 1e-12 relative is rounding only
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    for gg, gr in zip(g_got, g_ref):
        assert torch.allclose(gg, gr, rtol=1e-10, atol=1e-13)


def test_self_interaction_gradient_is_exact(monkeypatch):
    """x used as both arguments: autograd adds the two contributions (checked by finite differences)."""
    monkeypatch.setattr(kernels.dense, "MEMORY_BUDGET", 50)
    x = torch.randn(25, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    a = torch.full((25,), 1 / 25, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda y: kernels.gaussian_pair_sum(y, y, a, a, 0.3), (x,))


def test_far_points_do_not_underflow_to_nan():
    x = torch.tensor([[0.0], [1e3]], dtype=torch.float64, requires_grad=True)
    a = torch.full((2,), 0.5, dtype=torch.float64)
    value = kernels.gaussian_pair_sum(x, x, a, a, 1e-3)
    (g,) = torch.autograd.grad(value, x)
    assert float(value.detach()) == pytest.approx(0.5, rel=1e-12)  # only the two diagonal terms survive
    assert torch.isfinite(g).all()
