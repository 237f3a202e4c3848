"""The NOTEARS authors' simulator: graph sizes, acyclicity, weight ranges, noise laws, seeding."""

import numpy as np
import pytest

from latentsem.exceptions import LatentsemError, StructureError
from latentsem.graph import has_directed_cycle
from latentsem.simulate.dag import simulate_dag, simulate_linear_sem, simulate_notears_problem, simulate_parameter


@pytest.mark.parametrize("d", [5, 20, 50])
def test_erdos_renyi_has_exactly_s0_edges_and_no_cycle(d):
    B = simulate_dag(d, 2 * d, "ER", random_state=1)
    assert B.sum() == 2 * d
    assert np.all(np.diag(B) == 0)
    assert not has_directed_cycle(B)


@pytest.mark.parametrize("d", [10, 20, 50])
def test_scale_free_edge_count(d):
    m = 4
    B = simulate_dag(d, m * d, "SF", random_state=2)
    # node k (k = 1..d-1) sends min(m, k) edges: m (d - 1) - m (m - 1) / 2 in all
    assert B.sum() == m * (d - 1) - m * (m - 1) // 2
    assert not has_directed_cycle(B)
    assert B.sum(axis=1).max() == m                   # every node sends at most m edges


def test_scale_free_graphs_have_hubs_that_erdos_renyi_graphs_lack():
    # Preferential attachment: the largest in-degree is far above an ER graph's with as many edges.
    sf = [simulate_dag(50, 200, "SF", random_state=s).sum(axis=0).max() for s in range(5)]
    er = [simulate_dag(50, 194, "ER", random_state=s).sum(axis=0).max() for s in range(5)]
    assert min(sf) > max(er)


def test_same_seed_same_graph_and_data():
    X1, W1 = simulate_notears_problem(10, "ER", 2, n=50, random_state=7)
    X2, W2 = simulate_notears_problem(10, "ER", 2, n=50, random_state=7)
    X3, W3 = simulate_notears_problem(10, "ER", 2, n=50, random_state=8)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(X1, X2)
    assert not np.array_equal(W1, W3)


def test_weights_lie_in_the_two_ranges_with_both_signs():
    B = simulate_dag(30, 200, "ER", random_state=3)
    W = simulate_parameter(B, random_state=3)
    w = W[B != 0]
    assert np.all((np.abs(w) >= 0.5) & (np.abs(w) <= 2.0))
    assert np.all(W[B == 0] == 0)
    assert 0.35 < np.mean(w > 0) < 0.65


def test_gaussian_sem_has_the_implied_covariance():
    # X = X W + Z  =>  Cov(X) = (I - W)^-T (I - W)^-1 for unit noise.
    W = np.array([[0.0, 1.5, 0.0], [0.0, 0.0, -0.8], [0.0, 0.0, 0.0]])
    X = simulate_linear_sem(W, 200_000, "gaussian", random_state=4)
    inv = np.linalg.inv(np.eye(3) - W)
    np.testing.assert_allclose(np.cov(X, rowvar=False), inv.T @ inv, rtol=0.02, atol=0.02)


@pytest.mark.parametrize("noise, mean, var", [("gaussian", 0.0, 4.0), ("exponential", 2.0, 4.0),
                                              ("gumbel", 2.0 * np.euler_gamma, np.pi ** 2 / 6 * 4.0),
                                              ("uniform", 0.0, 4.0 / 3.0)])
def test_noise_laws_with_scale_two(noise, mean, var):
    X = simulate_linear_sem(np.zeros((2, 2)), 200_000, noise, noise_scale=2.0, random_state=5)
    np.testing.assert_allclose(X.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(X.var(axis=0), var, rtol=0.03)
    if noise == "uniform":
        assert np.abs(X).max() <= 2.0


def test_errors():
    with pytest.raises(LatentsemError, match="graph_type must be one of"):
        simulate_dag(5, 5, "BP")
    with pytest.raises(LatentsemError, match=r"s0 must be an int in \[0, 10\]"):
        simulate_dag(5, 11, "ER")
    with pytest.raises(LatentsemError, match="noise must be one of"):
        simulate_linear_sem(np.zeros((2, 2)), 5, "laplace")
    with pytest.raises(StructureError, match="directed cycle"):
        simulate_linear_sem(np.array([[0, 1.0], [1.0, 0]]), 5)
