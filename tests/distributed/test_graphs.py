"""Graph builders, normalizations and the symmetrization convention."""
import json

import numpy as np
import pytest
import scipy.sparse as sp

from solver.distributed import graphs


def test_regular_is_simple_d_regular_and_seeded():
    g = graphs.named_graph("regular", 100, d=5, seed=7)
    A = g.J.toarray()
    assert np.all(A.sum(axis=1) == 5)
    assert np.all(np.diag(A) == 0) and np.all((A == 0) | (A == 1)) and np.all(A == A.T)
    again = graphs.named_graph("regular", 100, d=5, seed=7)
    other = graphs.named_graph("regular", 100, d=5, seed=8)
    np.testing.assert_array_equal(g.edges, again.edges)  # same seed, same stored edges
    assert not np.array_equal(g.edges, other.edges)
    # the swaps mix: few of the 200 circulant edges (i, i+1), (i, i+2) of the starting graph survive
    circulant = {tuple(sorted((i, (i + k) % 100))) for i in range(100) for k in (1, 2)}
    assert len({(int(a), int(b)) for a, b, _ in g.edges} & circulant) < 50


@pytest.mark.parametrize("kind,deg", [("ring", 2), ("lattice", 4), ("complete", 35)])
def test_degrees(kind, deg):
    g = graphs.named_graph(kind, 36)
    np.testing.assert_array_equal(g.degrees, deg)


def test_star_open_lattice_and_erdos_renyi():
    s = graphs.named_graph("star", 10)
    assert s.degrees[0] == 9 and np.all(s.degrees[1:] == 1)
    open_lat = graphs.named_graph("lattice", 12, rows=3, periodic=False)
    assert sorted(set(open_lat.degrees.tolist())) == [2, 3, 4] and len(open_lat.edges) == 17  # 3*3 + 2*4
    er = graphs.named_graph("erdos_renyi", 400, p=0.05, seed=1)
    m = len(er.edges)
    mean, sd = 0.05 * 79800, np.sqrt(79800 * 0.05 * 0.95)
    assert abs(m - mean) < 5 * sd  # binomial edge count, 5 sd


def test_normalizations_and_symmetrization():
    s = graphs.named_graph("star", 5, normalize_mode="row")
    np.testing.assert_allclose(np.asarray(s.J.sum(axis=1)).ravel(), 1.0, rtol=0, atol=1e-15)
    W = s.W.toarray()
    np.testing.assert_allclose(W[0, 1], 0.5 * (0.25 + 1.0), rtol=1e-15)  # (J_01 + J_10)/2
    assert np.all(np.diag(W) == 0)
    c = graphs.named_graph("complete", 8, normalize_mode="1/n")
    np.testing.assert_allclose(c.J.toarray()[0, 1], 1 / 8, rtol=1e-15)
    c1 = graphs.named_graph("complete", 8, normalize_mode="1/(n-1)")
    np.testing.assert_allclose(c1.degrees, 1.0, rtol=1e-14)


def test_user_matrix_edges_and_files(tmp_path):
    M = [[0, 1, 0], [1, 0, 2], [0, 2, 0]]
    g = graphs.from_matrix(M)
    e = graphs.from_edges(3, [[0, 1, 1], [1, 2, 2]])
    np.testing.assert_array_equal(g.J.toarray(), e.J.toarray())
    (tmp_path / "J.csv").write_text("0,1,0\n1,0,2\n0,2,0\n")
    (tmp_path / "J.json").write_text(json.dumps(M))
    for name in ("J.csv", "J.json"):
        np.testing.assert_array_equal(graphs.load_matrix(tmp_path / name).J.toarray(), np.array(M, float))
    with pytest.raises(ValueError):
        graphs.from_edges(3, [[1, 0, 1]])
    with pytest.raises(ValueError):
        graphs.from_matrix([[0, 1, 2]])
    assert isinstance(g.J, sp.csr_matrix)
