"""Independent projection: exact Gaussian W2 for linear drifts, decay with n only for dense graphs,
McKean-Vlasov limit for row sums 1."""
import numpy as np
import pytest

from solver.distributed.graphs import named_graph
from solver.distributed.projection import (PairDrift, gaussian_w2_linear, independent_projection, w2_debiased,
                                           w2_squared_1d)

LIN = PairDrift(a=1.0, c=0.3, kappa=2.0, kind="linear")


def test_w2_quantile_formula_and_debiasing():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20000, 4)), 0.5 + rng.standard_normal((20000, 4))
    # W2^2(N(0,1), N(0.5,1)) = 0.25; sd of the estimate ~ 2 * 0.5 / sqrt(N) = 7e-3, so 0.03 is > 4 sd
    np.testing.assert_allclose(w2_squared_1d(x, y), 0.25, atol=0.03)
    same = rng.standard_normal((4000, 50)), rng.standard_normal((4000, 50))
    raw, deb = w2_squared_1d(*same).mean(), w2_debiased(*same).mean()
    assert raw > 5e-4  # plain estimate of W2^2(mu, mu) = 0 is biased up by O(1/N)
    assert abs(deb) < raw / 5  # Richardson in N removes most of it


@pytest.mark.parametrize("kind", ["complete", "ring"])
def test_simulation_matches_exact_gaussian_w2(kind):
    g = named_graph(kind, 8, normalize_mode="row")
    exact = gaussian_w2_linear(g.J, LIN, 1.0, 50)
    r = independent_projection(g.J, LIN, 1.0, 50, samples=20000, records=3, seed=1)
    # debiased estimator: sampling sd ~3e-5 at N = 20000 (seed-to-seed spread), tolerance 1.5e-4 ~ 5 sd
    assert r.w2[-1] == pytest.approx(exact, abs=1.5e-4)
    assert r.w2[0] == 0.0


def test_w2_falls_with_n_for_complete_graph_but_not_ring():
    comp = [gaussian_w2_linear(named_graph("complete", n, normalize_mode="row").J, LIN) for n in (8, 16, 32, 64)]
    ring = [gaussian_w2_linear(named_graph("ring", n, normalize_mode="row").J, LIN) for n in (8, 16, 32, 64)]
    slope = np.polyfit(np.log([8, 16, 32, 64]), np.log(comp), 1)[0]
    assert slope == pytest.approx(-2.0, abs=0.1)  # W2^2 = (sd_X - sd_Y)^2 = O(1/n^2) on the complete graph
    assert max(ring) / min(ring) < 1.2 and min(ring) > 1e-3  # bounded degree: no decay


def test_mckean_vlasov_limit_for_row_sums_one():
    g = named_graph("ring", 6, normalize_mode="row")
    r = independent_projection(g.J, PairDrift(1.0, 0.3, 2.0, "tanh"), 1.0, 40, samples=8000, records=2, seed=2)
    assert r.mv is not None
    mv = np.repeat(r.mv[-1][:, None], 6, axis=1)
    # every cloud Y^i is a McKean-Vlasov copy: W2^2 ~ sampling noise only (debiased, sd ~1e-4 at N = 8000)
    assert np.abs(w2_debiased(r.Y[-1], mv)).max() < 1e-3
    far = PairDrift(1.0, 0.3, 2.0, "tanh")
    assert independent_projection(named_graph("star", 6).J, far, 1.0, 5, samples=100, records=2).mv is None
