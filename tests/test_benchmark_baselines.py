"""Baseline adapters of the synthetic benchmark (benchmarks/_baselines.py) and its task bookkeeping."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # ``benchmarks`` lives at the repository root

from benchmarks import _baselines as bl  # noqa: E402
from benchmarks import lges_synthetic as bench  # noqa: E402
from latentsem.metrics.latent import compare_structures  # noqa: E402
from latentsem.model import simple_structure  # noqa: E402

CLUSTERS = {"A": ["a1", "a2", "a3", "a4"], "B": ["b1", "b2", "b3", "b4"], "C": ["c1", "c2", "c3", "c4"]}


def three_factor_frame(rng, n, phi, loading=0.8, noise="normal"):
    """Items with one loading on one of three factors with correlation matrix ``phi``, unit variances."""
    factors = rng.multivariate_normal(np.zeros(3), phi, size=n)
    if noise == "uniform":  # non-Gaussian factors and errors for GIN
        factors = np.linalg.cholesky(phi) @ rng.uniform(-math.sqrt(3), math.sqrt(3), size=(3, n))
        factors = factors.T
    columns = {}
    for j, items in enumerate(CLUSTERS.values()):
        for item in items:
            if noise == "uniform":
                error = rng.uniform(-math.sqrt(3), math.sqrt(3), size=n)
            else:
                error = rng.standard_normal(n)
            columns[item] = loading * factors[:, j] + math.sqrt(1 - loading**2) * error
    return pd.DataFrame(columns)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# --------------------------------------------------------- parallel analysis
def test_parallel_analysis_counts_three_factors(rng):
    X = three_factor_frame(rng, 500, np.eye(3))
    n_factors, observed, thresholds = bl.parallel_analysis(X, random_state=1)
    assert n_factors == 3
    # eigenvalues of a correlation matrix sum to p, decreasing; random ones hover around 1
    assert math.isclose(observed.sum(), 12, rel_tol=1e-10)
    assert np.all(np.diff(observed) <= 1e-12)
    assert observed[2] > thresholds[2] and observed[3] < thresholds[3]
    assert 1.0 < thresholds[0] < 1.5


def test_parallel_analysis_keeps_one_factor_for_noise(rng):
    X = pd.DataFrame(rng.standard_normal((300, 8)))
    assert bl.parallel_analysis(X, random_state=2)[0] == 1


def test_parallel_analysis_thresholds_are_the_95th_percentile_of_random_eigenvalues():
    n, p, draws = 50, 4, 100
    X = np.random.default_rng(3).standard_normal((n, p))
    _, _, thresholds = bl.parallel_analysis(X, n_draws=draws, random_state=7)
    rng = np.random.default_rng(7)
    random = [np.linalg.eigvalsh(np.corrcoef(rng.standard_normal((n, p)), rowvar=False))[::-1] for _ in range(draws)]
    np.testing.assert_allclose(thresholds, np.quantile(random, 0.95, axis=0), rtol=1e-12)


# ----------------------------------------------------------------------- EFA
def test_efa_recovers_three_factors_and_the_correlated_pair(rng):
    phi = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    X = three_factor_frame(rng, 1000, phi)
    truth = simple_structure(CLUSTERS, [("A", "B", "undirected")])
    est = bl.efa_structure(X, latent_edges="corr", random_state=0)
    result = compare_structures(truth, est)
    assert est.metadata["n_factors"] == 3
    assert result.f1 == 1.0 and result.shd == 0, result.summary()
    factor_of = {result.matching[f]: f for f in est.latent}
    assert set(est.neighbours(factor_of["A"])) == {factor_of["B"]}


def test_efa_none_has_no_latent_edges_and_every_item_keeps_a_loading(rng):
    phi = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    X = three_factor_frame(rng, 400, phi)
    est = bl.efa_structure(X, latent_edges="none", n_factors=3, loading_threshold=0.99)
    assert est.latent == ("F1", "F2", "F3")
    assert not est.latent_directed().any() and not est.latent_undirected().any()
    # the 0.99 threshold removes every loading; each item keeps exactly its largest one
    assert np.array_equal(est.loading_mask().sum(axis=1), np.ones(12, dtype=int))
    truth = simple_structure(CLUSTERS)
    assert compare_structures(truth, est).f1 == 1.0


def test_efa_loadings_and_phi_are_aligned(rng):
    """Items of factor A load on the column whose correlation with B's column is 0.5."""
    phi = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.0]])
    X = three_factor_frame(rng, 3000, phi)
    loadings, est_phi = bl.efa_loadings(X, 3)
    col = {name: int(np.argmax(np.abs(loadings[4 * k]))) for k, name in enumerate(CLUSTERS)}
    assert len(set(col.values())) == 3
    np.testing.assert_allclose(est_phi[col["A"], col["B"]], 0.5, atol=0.06)
    np.testing.assert_allclose(est_phi[col["A"], col["C"]], 0.0, atol=0.06)
    np.testing.assert_allclose(np.diag(est_phi), 1.0, atol=1e-8)
    np.testing.assert_allclose(np.abs(loadings[np.arange(12), [col[i[0].upper()] for i in X.columns]]), 0.8, atol=0.06)


def test_latent_edges_of_a_four_cycle_are_oriented_by_factor_order():
    phi = np.eye(4)
    for i, j in [(0, 1), (1, 2), (2, 3), (0, 3)]:  # a chordless 4-cycle: no CPDAG has it undirected
        phi[i, j] = phi[j, i] = 0.4
    directed, undirected, how = bl.latent_edges_from_correlations(phi)
    assert not undirected.any() and "not chordal" in how
    assert sorted(zip(*np.nonzero(directed))) == [(0, 1), (0, 3), (1, 2), (2, 3)]
    phi[0, 2] = phi[2, 0] = -0.35  # a chord makes it chordal: kept undirected
    directed, undirected, how = bl.latent_edges_from_correlations(phi)
    assert not directed.any() and undirected.sum() == 10 and how.startswith("undirected")


def test_efa_rejects_unknown_options(rng):
    X = three_factor_frame(rng, 100, np.eye(3))
    with pytest.raises(ValueError, match="The 'latent_edges' parameter of efa_structure must be one of"):
        bl.efa_structure(X, latent_edges="all")
    with pytest.raises(ValueError, match="The 'method' parameter of efa_loadings must be one of"):
        bl.efa_loadings(X, 2, method="paf")


# ----------------------------------------------------------------------- GIN
def test_gin_graph_conversion_renames_columns_and_keeps_edge_kinds():
    from causallearn.graph.Edge import Edge as ClEdge
    from causallearn.graph.Endpoint import Endpoint
    from causallearn.graph.GeneralGraph import GeneralGraph
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.graph.NodeType import NodeType

    nodes = {name: GraphNode(name) for name in ["L1", "L2", "L3", "X1", "X2", "X3", "X4"]}
    for name in ("L1", "L2", "L3"):
        nodes[name].set_node_type(NodeType.LATENT)
    G = GeneralGraph(list(nodes.values()))
    for a, b in [("L1", "X1"), ("L1", "X2"), ("L2", "X3"), ("L3", "X4"), ("L1", "L2"), ("L1", "L3")]:
        G.add_directed_edge(nodes[a], nodes[b])
    G.add_edge(ClEdge(nodes["L2"], nodes["L3"], Endpoint.TAIL, Endpoint.TAIL))
    est = bl.gin_graph_to_structure(G, ["q1", "q2", "q3", "q4", "q5"])
    assert est.observed == ("q1", "q2", "q3", "q4", "q5")
    assert est.latent == ("L1", "L2", "L3")
    assert sorted(est.children("L1")) == ["L2", "L3", "q1", "q2"]
    assert est.neighbours("L2") == ["L3"]
    assert est.parents("q5") == []  # a column GIN left out stays, without parents


def test_cached_gin_dependence_equals_causal_learn_statistic(rng):
    from causallearn.search.HiddenCausal.GIN import GIN as gin_module

    data = rng.uniform(-1, 1, size=(150, 6))
    data[:, 1] += data[:, 0]
    cov = np.cov(data.T)
    original = gin_module.cal_dep_for_gin
    expected = original(data, cov, [0, 1], [2, 3, 4, 5])
    with bl.cached_gin_dependence(data):
        cached = gin_module.cal_dep_for_gin(data, cov, [0, 1], [2, 3, 4, 5])
        other = data.copy()  # another array falls through to the library function
        assert gin_module.cal_dep_for_gin(other, cov, [0, 1], [2, 3, 4, 5]) == expected
    assert gin_module.cal_dep_for_gin is original  # restored after the block
    np.testing.assert_allclose(cached, expected, rtol=1e-10)


def test_gin_recovers_three_clusters_on_uniform_noise(rng):
    phi = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    X = three_factor_frame(rng, 400, phi, noise="uniform")[[c for items in CLUSTERS.values() for c in items[:3]]]
    est = bl.gin_structure(X)
    clusters = sorted(sorted(c for c in est.children(lat) if c in X.columns) for lat in est.latent)
    assert clusters == [["a1", "a2", "a3"], ["b1", "b2", "b3"], ["c1", "c2", "c3"]]
    # GIN_MI orders the latents completely: a full DAG among them
    assert est.latent_directed().sum() == 3 and est.is_dag
    assert est == bl.gin_structure(X, cached_dependence=False)


# ----------------------------------------------------------------- harness
def test_tasks_share_gin_uniform_data_between_tables():
    tasks = bench.build_tasks(("gin", "efa_none"), ("main", "misspecified"), range(2), (500, 1000))
    gin = [t for t in tasks if t.method == "gin"]
    # main: 2 sizes x 2 seeds on uniform data; misspecified adds only the leaky ReLU data
    assert len(gin) == 8 and sum(t.noise == "uniform" for t in gin) == 4
    assert len([t for t in tasks if t.method == "efa_none"]) == 12
    assert not bench.build_tasks(("efa_none",), ("delta",), range(2), (1000,))


def test_summary_is_mean_and_standard_error_over_graphs():
    records = [{"seed": s, "n": 100, "noise": "gaussian", "nonlinearity": None, "method": "efa_none", "delta": None,
                "f1": f1, "precision": 1.0, "recall": f1, "shd": shd, "runtime": rt, "n_latent": 2, "n_latent_true": 3,
                "error": None} for s, (f1, shd, rt) in enumerate([(0.5, 10, 1.0), (0.7, 6, 3.0), (0.9, 2, 2.0)])]
    records.append({**records[0], "seed": 3, "error": "LinAlgError: singular", "f1": None, "shd": None})
    s = bench.summarize(records, "efa_none", 100, "gaussian", None)
    assert (s["graphs"], s["failed"]) == (3, 1)
    np.testing.assert_allclose([s["f1"], s["f1_se"]], [0.7, 0.2 / math.sqrt(3)], rtol=1e-12)
    np.testing.assert_allclose([s["shd"], s["shd_se"]], [6.0, 4 / math.sqrt(3)], rtol=1e-12)
    assert s["runtime_median"] == 2.0


def test_run_task_scores_the_method_against_the_truth():
    from latentsem.simulate.gnfm import make_gnfm_dataset

    task = bench.Task(seed=1, n=200, noise="gaussian", nonlinearity=None, method="efa_none")
    record = bench.run_task(task)
    X, truth = make_gnfm_dataset(1, 200)
    expected = compare_structures(truth, bl.efa_structure(X, latent_edges="none", random_state=1))
    assert record["error"] is None
    assert (record["f1"], record["shd"], record["n_latent"]) == (expected.f1, expected.shd, record["n_factors"])
    assert record["n_latent_true"] == len(truth.latent)
