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


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_self_sums_over_time_points_match_the_double_sum(monkeypatch, dim):
    """An interaction's self term at T time points at once (batched) against the dense formula per time
    point: value, gradient, and (inside ``second_order``) Hessian-vector products; and the per-cloud
    fallback beyond the memory budget (value and gradient: there the pair sums are the fused ones)."""
    gen = torch.Generator().manual_seed(dim)
    x = (3.0 + 0.5 * torch.randn(40, 5, dim, dtype=torch.float64, generator=gen)).requires_grad_(True)
    a = torch.rand(40, dtype=torch.float64, generator=gen)
    v = torch.randn(40, 5, dim, dtype=torch.float64, generator=gen)

    def reference(y):
        return sum(dense(y[:, t], y[:, t], a, a, 0.4) for t in range(y.shape[1]))
    ref = reference(x)
    (g_ref,) = torch.autograd.grad(ref, x, create_graph=True)
    (hv_ref,) = torch.autograd.grad(g_ref, x, v)
    for budget in (kernels.dense.MEMORY_BUDGET, 50):  # batched; one cloud at a time (40^2 * 5 pairs > 50)
        monkeypatch.setattr(kernels.dense, "MEMORY_BUDGET", budget)
        got = kernels.gaussian_self_sums(x, a, 0.4)
        (g_got,) = torch.autograd.grad(got, x)
        # sums of 8,000 positive terms in float64 (the batched pass centres each cloud, the reference does
        # not): agreement to 1e-12 relative is rounding only
        assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
        assert torch.allclose(g_got, g_ref.detach(), rtol=1e-10, atol=1e-13)
    monkeypatch.undo()
    with kernels.second_order():
        (g2,) = torch.autograd.grad(kernels.gaussian_self_sums(x, a, 0.4), x, create_graph=True)
        (hv,) = torch.autograd.grad(g2, x, v)
    assert torch.allclose(hv, hv_ref, rtol=1e-10, atol=1e-12)
