"""The ML score (LGES paper eqs. 1-3) and its batched Levenberg-Marquardt engine.

Besides the public API these tests use the engine's internals: ``_Layout``,
``latentsem._lm.state`` and ``gradient_fisher`` (the compiled general path) to check the analytic gradient and the
Fisher information against finite differences of the model-implied
covariance (computed here from ``Params`` only), ``_factor_gradient_hessian``
and ``_is_factor_model`` for the factor-model path (exact Hessian, B
eliminated), and ``_cluster_start`` to draw the random restarts that
``score_ML`` uses.

BLAS runs single-threaded in this module: the engine's matrices are small, and
on a shared machine OpenBLAS threads made single solves 100x slower.
"""

import math

import numpy as np
import pytest

from latentsem import _lm
from latentsem.datasets import load_dataset
from latentsem.exceptions import StructureError
from latentsem.model import Edge, Structure, simple_structure
from latentsem.score import (
    PSI_FLOOR, Params, ScoreSpec, _cluster_start, _factor_gradient_hessian, _is_factor_model,
    _Layout, candidate_starts, dag_start, efa_ml, fit_specs, params_from_phi, rotated_start, saturated_f,
    score_ML,
)
from latentsem.simulate.gnfm import noise_variances, population_covariance, random_gnfm, simulate_data

SMALL_GRAPHS = {"n_groups": (2, 3)}  # 8-16 items: fast enough for unit tests
N = 1000


@pytest.fixture(autouse=True, scope="module")
def single_threaded_blas():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # threadpoolctl comes with scikit-learn; without it tests only run slower
        yield
        return
    with threadpool_limits(limits=1):
        yield


# ------------------------------------------------------------------ helpers
def discrepancy(params, S):
    """f = (log det Sigma + tr(Sigma^-1 S)) / 2 straight from Params (independent of the engine)."""
    Sigma = params.implied_covariance()
    return 0.5 * (np.linalg.slogdet(Sigma)[1] + np.trace(np.linalg.solve(Sigma, S)))


def params_of(layout, theta):
    Lambda, B, psi = layout.unpack(theta[None])
    return Params(Lambda[0], B[0], psi[0])


def random_theta(rng, layout):
    Lambda = rng.normal(size=(layout.p, layout.m))
    B = np.tril(rng.normal(scale=0.5, size=(layout.m, layout.m)), -1)
    psi = rng.uniform(0.3, 1.0, size=layout.p)
    return layout.pack(Lambda[None], B[None], psi[None])[0]


def random_covariance(rng, p):
    A = rng.normal(size=(p, 2 * p))
    return A @ A.T / (2 * p)


def initial_state(structure):
    """LGES's initial state (Definition 3): floor(p/2) latents, every loading, complete latent graph."""
    p = len(structure.observed)
    m = p // 2
    return Structure.from_masks(structure.observed, [f"H{k + 1}" for k in range(m)], np.ones((p, m), bool),
                                None, np.triu(np.ones((m, m), bool), 1))


def with_loadings(structure, mask, directed=None):
    directed = structure.latent_directed() if directed is None else directed
    return Structure.from_masks(structure.observed, structure.latent, mask, directed)


def standardized_sample_covariance(structure, seed, n=N):
    X = simulate_data(structure, n=n, random_state=seed).to_numpy()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X.T @ X / n


def pair_mask(loadings, i, j):
    """Alg. 1 line 13 (k = 1): items i and j are caused by latent 0 only."""
    mask = loadings.copy()
    mask[[i, j]] = False
    mask[[i, j], 0] = True
    return mask


def zeroed_starts(parent, masks):
    """The parent's optimum with each candidate's removed loadings set to 0."""
    starts = []
    for mask in masks:
        start = parent.copy()
        start.Lambda[~mask] = 0.0
        starts.append(start)
    return starts


@pytest.fixture(scope="module")
def holzinger():
    data = load_dataset("holzinger1939")
    return data.covariance(), data.n


@pytest.fixture(scope="module")
def sample_graph():
    """A small GNFM (11 items, groups L1 | L2 | L3 L4) and a standardized sample covariance, n = 1000."""
    truth = random_gnfm(5, **SMALL_GRAPHS)
    return truth, standardized_sample_covariance(truth, 105)


@pytest.fixture(scope="module")
def initial_optimum(sample_graph):
    truth, S = sample_graph
    return score_ML(initial_state(truth), S, N, n_restarts=8, random_state=0)


# ------------------------------------------------------------ golden value
def test_holzinger_swineford_cfa_matches_lavaan_chi_square(holzinger):
    # REFERENCE.md section 3: lavaan 0.6-14, chi2 = 85.3055 (fmin = F / 2, so chi2 = 2 N (f - f_sat)).
    S, n = holzinger
    cfa = simple_structure(
        {"visual": ["x1", "x2", "x3"], "textual": ["x4", "x5", "x6"], "speed": ["x7", "x8", "x9"]},
        [("visual", "textual", "undirected"), ("visual", "speed", "undirected"),
         ("textual", "speed", "undirected")],
    )
    result = score_ML(cfa, S, n, random_state=0)
    assert result.converged
    assert result.heywood == ()
    assert abs(2 * n * (result.f - saturated_f(S)) - 85.3055) < 1e-4


# -------------------------------------------------------------- derivatives
def compiled_state(layout, theta, S):
    """f, Sigma, P, Lambda T, T of the compiled general path at theta."""
    return _lm.state(np.array(theta, dtype=float), S, layout.m, layout.lam_rows, layout.lam_cols, layout.rows,
                     layout.cols)


def compiled_gradient_fisher(layout, theta, S):
    _, Sigma, P, LT, T = compiled_state(layout, theta, S)
    return _lm.gradient_fisher(Sigma, P, LT, T, S, layout.iu, layout.iv, layout.c)


def test_gradient_matches_finite_differences_of_f():
    rng = np.random.default_rng(0)
    layout = _Layout(7, 3)
    theta = random_theta(rng, layout)
    S = random_covariance(rng, 7)
    g, _ = compiled_gradient_fisher(layout, theta, S)
    h = 1e-6
    numeric = np.empty(layout.q)
    for a in range(layout.q):
        e = np.zeros(layout.q)
        e[a] = h
        numeric[a] = (discrepancy(params_of(layout, theta + e), S)
                      - discrepancy(params_of(layout, theta - e), S)) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)
    # The engine's f is the same function as the one computed from Params.
    assert abs(compiled_state(layout, theta, S)[0] - discrepancy(params_of(layout, theta), S)) < 1e-12


def test_fisher_matrix_is_half_trace_of_sigma_derivatives():
    rng = np.random.default_rng(1)
    layout = _Layout(5, 2)
    theta = random_theta(rng, layout)
    S = random_covariance(rng, 5)
    _, F = compiled_gradient_fisher(layout, theta, S)
    h = 1e-6
    dSigma = []
    for a in range(layout.q):
        e = np.zeros(layout.q)
        e[a] = h
        dSigma.append((params_of(layout, theta + e).implied_covariance()
                       - params_of(layout, theta - e).implied_covariance()) / (2 * h))
    P = np.linalg.inv(params_of(layout, theta).implied_covariance())
    expected = np.array([[0.5 * np.trace(P @ da @ P @ db) for db in dSigma] for da in dSigma])
    np.testing.assert_allclose(F, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(F, F.T, rtol=0, atol=1e-12)


def test_compiled_state_rejects_sigma_that_is_not_positive_definite():
    layout = _Layout(4, 1)
    theta = layout.pack(np.ones((1, 4, 1)), np.zeros((1, 1, 1)), -np.ones((1, 4)))[0]   # Sigma = 11' - I
    f, *_ = compiled_state(layout, theta, np.eye(4))
    assert f == np.inf
    theta[0] = np.nan
    assert compiled_state(layout, theta, np.eye(4))[0] == np.inf


def test_linear_solvers_of_the_compiled_step_agree_with_lapack():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(9, 9))
    A = A @ A.T + 0.1 * np.eye(9)
    b = rng.normal(size=9)
    L, pd = _lm._cholesky(A)
    assert pd
    np.testing.assert_allclose(_lm._cholesky_solve(L, b), np.linalg.solve(A, b), rtol=1e-10)
    np.testing.assert_allclose(_lm._solve(A - 5 * np.eye(9), b), np.linalg.solve(A - 5 * np.eye(9), b), rtol=1e-8)
    assert not _lm._cholesky(A - 5 * np.eye(9))[1]        # indefinite: the step falls back to elimination
    assert np.isnan(_lm._solve(np.zeros((3, 3)), np.ones(3))).all()


# ------------------------------------------------ population covariances
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_structures_containing_the_truth_reach_the_saturated_likelihood(seed):
    # Lemma 1: the truth, a superset of it and LGES's initial state all generate Sigma_X.
    truth = random_gnfm(seed, **SMALL_GRAPHS)
    S = population_covariance(truth)
    rng = np.random.default_rng(seed)
    superset = truth.loading_mask().copy()
    absent = np.argwhere(~superset)
    for i, k in absent[rng.choice(len(absent), size=2, replace=False)]:
        superset[i, k] = True
    f_sat = saturated_f(S)
    for structure in (truth, with_loadings(truth, superset), initial_state(truth)):
        result = score_ML(structure, S, N, random_state=0)
        assert result.f - f_sat < 1e-8
        assert result.f - f_sat > -1e-10  # nothing beats Sigma = S


def test_truth_reaches_saturation_when_unique_variances_are_tiny():
    truth = random_gnfm(2, **SMALL_GRAPHS)
    S = population_covariance(truth)
    nv = noise_variances(truth)
    share = np.array([nv[x] for x in truth.observed]) / np.diag(S)
    assert share.min() < 2e-5  # the unique variance of X10 is 1.3e-5 of its variance
    assert score_ML(truth, S, N, random_state=0).f - saturated_f(S) < 1e-8


def test_deleting_a_true_edge_makes_the_fit_strictly_worse():
    truth = random_gnfm(5, **SMALL_GRAPHS)  # groups L1 | L2 | L3 L4, edge L1 -> L2
    S = population_covariance(truth)
    f_true = score_ML(truth, S, N, random_state=0).f
    single = {g[0] for g in truth.groups if len(g) == 1}
    latent = list(truth.latent)
    L, D = truth.loading_mask(), truth.latent_directed()
    # Edges whose deletion the model cannot absorb: loadings and latent edges of one-latent groups.
    candidates = [("loading", i, k) for i, k in np.argwhere(L) if latent[k] in single]
    candidates += [("latent", a, b) for a, b in np.argwhere(D) if {latent[a], latent[b]} <= single]
    assert len(candidates) >= 6 and any(kind == "latent" for kind, _, _ in candidates)
    for kind, a, b in candidates:
        mask, directed = L.copy(), D.copy()
        (mask if kind == "loading" else directed)[a, b] = False
        assert score_ML(with_loadings(truth, mask, directed), S, N, random_state=0).f - f_true > 1e-4, (kind, a, b)
    # One edge into a two-latent group is absorbed by rotating the group (REFERENCE.md section 8).
    two = [g for g in truth.groups if len(g) == 2][0]
    child = next(i for i in range(len(truth.observed)) if L[i, latent.index(two[0])])
    mask = L.copy()
    mask[child, latent.index(two[0])] = False
    assert abs(score_ML(with_loadings(truth, mask), S, N, random_state=0).f - f_true) < 1e-8


# ----------------------------------------------------- sample covariances
def test_initial_state_on_a_sample_is_finite_reports_heywood_and_is_deterministic(sample_graph, initial_optimum):
    truth, S = sample_graph
    result = initial_optimum
    assert np.isfinite(result.f) and np.all(np.isfinite(result.sigma))
    # df = ((p - m)^2 - (p + m)) / 2 > 0: a sample covariance is not reached (REFERENCE.md section 8).
    assert 2 * N * (result.f - saturated_f(S)) > 1.0
    floor = PSI_FLOOR * np.diag(S)
    np.testing.assert_array_equal(result.heywood, np.flatnonzero(result.params.psi <= floor * (1 + 1e-6)))
    assert np.all(result.params.psi >= floor * (1 - 1e-12))
    again = score_ML(initial_state(truth), S, N, n_restarts=8, random_state=0)
    assert again.f == result.f  # bitwise
    np.testing.assert_array_equal(again.params.Lambda, result.params.Lambda)


def test_initial_state_restarts_find_one_best_optimum(sample_graph, initial_optimum):
    # Individual starts end in local optima up to ~5e-3 apart (REFERENCE.md section 8); the best of
    # 9 starts must not depend on the seed, and no start may beat it.
    truth, S = sample_graph
    best = initial_optimum.f
    for seed in (1, 2):
        assert abs(score_ML(initial_state(truth), S, N, n_restarts=8, random_state=seed).f - best) < 1e-9
    spec = ScoreSpec.from_structure(initial_state(truth))
    rng = np.random.default_rng(7)
    starts = [_cluster_start(spec.loadings, S, rng, jitter=0.3) for _ in range(8)] + [efa_ml(S, spec.m)]
    K = len(starts)
    f, _, converged, _ = fit_specs(np.broadcast_to(spec.loadings, (K,) + spec.loadings.shape),
                                   spec.parents, S, starts)
    assert converged.all()
    assert np.all(f >= best - 1e-9)
    assert np.sum(f - best < 1e-8) >= 2  # the best point is reached from more than one start


def test_initial_state_seed_spread_stays_below_the_papers_delta():
    # On this graph 2 of 6 seeds (12 restarts each) miss the best optimum by 1.4e-4 (measured);
    # that spread must stay well below delta = 0.25 log N / N = 1.73e-3.
    truth = random_gnfm(3, **SMALL_GRAPHS)
    S = standardized_sample_covariance(truth, 103)
    fs = [score_ML(initial_state(truth), S, N, n_restarts=4, random_state=seed).f for seed in range(3)]
    assert max(fs) - min(fs) < 0.25 * math.log(N) / N


def test_warm_start_is_no_worse_than_cold_start(sample_graph, initial_optimum):
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    parent = initial_optimum.params
    masks = []
    for i, k in [(0, 0), (3, 2), (7, 4)]:  # one loading removed
        mask = spec.loadings.copy()
        mask[i, k] = False
        masks.append(mask)
    masks.append(pair_mask(spec.loadings, 0, 1))
    # The warm starts LGES uses: the rotated start, then the zeroed one as a restart. The zeroed start
    # alone can end in a worse local optimum (here for (7, 4): 1.9e-3 above the parent, REFERENCE.md
    # section 8); it never ends below the parent.
    starts = [candidate_starts(parent, mask) for mask in masks]
    f_warm, _, converged, _ = fit_specs(np.stack(masks), spec.parents, S, starts)
    assert converged.all()
    f_zeroed, _, _, _ = fit_specs(np.stack(masks), spec.parents, S, zeroed_starts(parent, masks))
    assert np.all(f_zeroed >= f_warm - 1e-10)
    for k, mask in enumerate(masks):
        cold = Structure.from_masks(truth.observed, spec.latent, mask, np.asarray(spec.parents).T)
        assert f_warm[k] <= score_ML(cold, S, N, random_state=0).f + 1e-8, k
    # One deleted loading is absorbed by the rotation freedom: the parent's optimum is kept.
    np.testing.assert_allclose(f_warm[:3], initial_optimum.f, rtol=0, atol=1e-8)
    assert f_warm[3] > initial_optimum.f + 1e-6


def test_a_batch_member_gets_the_same_fit_as_alone(sample_graph, initial_optimum):
    # All 55 line-13 pair candidates plus the unrestricted state in one batch, then each alone.
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    p = spec.p
    masks = [pair_mask(spec.loadings, i, j) for i in range(p) for j in range(i + 1, p)] + [spec.loadings]
    starts = zeroed_starts(initial_optimum.params, masks)
    f_batch, params_batch, _, _ = fit_specs(np.stack(masks), spec.parents, S, starts)
    for k, mask in enumerate(masks):
        f_alone, params_alone, _, _ = fit_specs(mask[None], spec.parents, S, [starts[k]])
        assert abs(f_batch[k] - f_alone[0]) < 1e-12, k
        assert np.all(params_batch[k].Lambda[~mask] == 0)


def test_f_accept_stops_a_member_as_soon_as_it_is_reached(sample_graph, initial_optimum):
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    masks = np.stack([pair_mask(spec.loadings, 0, 1), spec.loadings.copy()])
    masks[1, [0, 1, 2, 3]] = False  # items 0-3 caused by latent 1 only
    masks[1, [0, 1, 2, 3], 1] = True
    starts = zeroed_starts(initial_optimum.params, masks)
    f_full, _, _, n_full = fit_specs(masks, spec.parents, S, starts)
    start_f = np.array([discrepancy(s, S) for s in starts])
    f_accept = f_full + 0.05 * (start_f - f_full)  # reached on the way, not at the end
    f_acc, params, converged, n_acc = fit_specs(masks, spec.parents, S, starts, f_accept=f_accept)
    assert np.all(f_acc <= f_accept) and converged.all()
    assert np.all(n_acc < n_full)
    np.testing.assert_allclose([discrepancy(p, S) for p in params], f_acc, rtol=0, atol=1e-10)
    for k in range(2):  # one iteration fewer has not reached it: it stopped as soon as it could
        f_before, _, _, _ = fit_specs(masks[k:k + 1], spec.parents, S, starts[k:k + 1],
                                      max_iter=int(n_acc[k]) - 1)
        assert f_before[0] > f_accept[k]


def test_f_accept_skips_a_members_remaining_starts_once_reached(sample_graph, initial_optimum):
    # The acceptance is proven by the first start: later starts cannot change it, so they must not run.
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    mask = pair_mask(spec.loadings, 0, 1)
    starts = candidate_starts(initial_optimum.params, mask, n_random=1, random_state=0)
    f_first, _, _, n_first = fit_specs(mask[None], spec.parents, S, [starts[0]])
    f_all, _, _, n_all = fit_specs(mask[None], spec.parents, S, [starts])
    assert n_all[0] > n_first[0]  # without f_accept the restarts run
    f_acc, _, _, n_acc = fit_specs(mask[None], spec.parents, S, [starts], f_accept=f_first[0] + 1e-12)
    assert n_acc[0] <= n_first[0] and f_acc[0] <= f_first[0] + 1e-12


# ----------------------------------------------------------- input errors
def test_score_ml_rejects_covariance_edges_and_a_wrongly_sized_covariance(holzinger):
    S, n = holzinger
    cfa = simple_structure({"visual": ["x1", "x2", "x3"], "textual": ["x4", "x5", "x6"]})
    with_cov = cfa.replace(edges=list(cfa.edges) + [Edge("x1", "x4", "covariance")])
    with pytest.raises(StructureError, match="no residual covariances"):
        score_ML(with_cov, S[:6, :6], n)
    with pytest.raises(StructureError, match=r"The covariance is 9x9 but the structure has 6 observed variables"):
        score_ML(cfa, S, n)
    result = score_ML(cfa, S[:6, :6], n, random_state=0)
    assert result.log_likelihood == -n * result.f
    # The paper's L (eq. 3) equals lavaan's logLik without its constant - N p log(2 pi) / 2.
    Sigma = result.sigma
    L = -0.5 * n * (np.linalg.slogdet(Sigma)[1] + np.trace(np.linalg.solve(Sigma, S[:6, :6])))
    assert abs(result.log_likelihood - L) < 1e-8 * abs(L)


# ------------------------------------------------------- re-parametrizing
def test_params_from_phi_and_dag_start_keep_sigma_for_a_complete_dag():
    rng = np.random.default_rng(3)
    p, m = 8, 4
    Lambda = rng.normal(size=(p, m))
    A = rng.normal(size=(m, m))
    Phi = A @ A.T + 0.5 * np.eye(m)
    psi = rng.uniform(0.2, 1.0, size=p)
    Sigma = Lambda @ Phi @ Lambda.T + np.diag(psi)
    params = params_from_phi(Lambda, Phi, psi)
    assert np.all(np.triu(params.B) == 0)
    np.testing.assert_allclose(params.implied_covariance(), Sigma, rtol=0, atol=1e-12 * np.abs(Sigma).max())
    complete = np.tril(np.ones((m, m), bool), -1)
    moved = dag_start(params, complete)
    np.testing.assert_allclose(moved.implied_covariance(), Sigma, rtol=0, atol=1e-12 * np.abs(Sigma).max())


def test_dag_start_projects_phi_onto_a_sparser_dag():
    # Each latent regressed on its new parents in Phi: coefficients beta_i, residual variance omega_i,
    # so Phi becomes (I - beta)^-1 diag(omega) (I - beta)^-T while Lambda is unchanged in meaning.
    rng = np.random.default_rng(4)
    p, m = 8, 4
    Lambda = rng.normal(size=(p, m))
    A = rng.normal(size=(m, m))
    Phi = A @ A.T + 0.5 * np.eye(m)
    psi = rng.uniform(0.2, 1.0, size=p)
    chain = np.eye(m, k=-1, dtype=bool)  # 1 -> 2 -> 3 -> 4
    chain[3, 0] = True  # and 1 -> 4
    beta, omega = np.zeros((m, m)), np.empty(m)
    for i in range(m):
        pa = np.flatnonzero(chain[i])
        beta[i, pa] = np.linalg.solve(Phi[np.ix_(pa, pa)], Phi[pa, i]) if pa.size else 0.0
        omega[i] = Phi[i, i] - beta[i, pa] @ Phi[pa, i]
    T = np.linalg.inv(np.eye(m) - beta)
    expected = Lambda @ T @ np.diag(omega) @ T.T @ Lambda.T + np.diag(psi)
    moved = dag_start(params_from_phi(Lambda, Phi, psi), chain)
    assert np.all(moved.B[~chain] == 0)
    np.testing.assert_allclose(moved.implied_covariance(), expected, rtol=1e-12, atol=1e-12)
    assert np.abs(expected - (Lambda @ Phi @ Lambda.T + np.diag(psi))).max() > 1e-3


# ------------------------------------------------------ factor-model path
def single_mask(loadings, i, k):
    """Alg. 1 lines 5-11 style: item i keeps only latent k."""
    mask = loadings.copy()
    mask[i] = False
    mask[i, k] = True
    return mask


def factor_gradient(M, psi, S):
    """df/dM = G M and df/dpsi = diag(G) / 2 with G = P - P S P (written out here, not the engine's)."""
    P = np.linalg.inv(M @ M.T + np.diag(psi))
    G = P - P @ S @ P
    return G @ M, 0.5 * np.diag(G)


def test_factor_hessian_matches_finite_differences_of_the_gradient():
    rng = np.random.default_rng(5)
    p, m = 7, 3
    S = random_covariance(rng, p)
    M = rng.normal(size=(p, m))
    psi = rng.uniform(0.3, 1.0, size=p)
    P = np.linalg.inv(M @ M.T + np.diag(psi))
    g, H = _factor_gradient_hessian(M, P, S)
    gM, gpsi = factor_gradient(M, psi, S)
    np.testing.assert_allclose(g, np.concatenate([gM.ravel(), gpsi]), rtol=1e-10, atol=1e-12)
    h = 1e-6
    theta = np.concatenate([M.ravel(), psi])
    numeric = np.empty_like(H)
    for a in range(theta.size):
        e = np.zeros(theta.size)
        e[a] = h
        plus = factor_gradient((theta + e)[:p * m].reshape(p, m), (theta + e)[p * m:], S)
        minus = factor_gradient((theta - e)[:p * m].reshape(p, m), (theta - e)[p * m:], S)
        numeric[:, a] = (np.concatenate([plus[0].ravel(), plus[1]])
                         - np.concatenate([minus[0].ravel(), minus[1]])) / (2 * h)
    np.testing.assert_allclose(H, numeric, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12)


def test_factor_path_covers_complete_dags_with_nested_item_supports():
    p, m = 8, 4
    full = np.ones((p, m), bool)
    complete = np.tril(np.ones((m, m), bool), -1)
    assert _is_factor_model(full, complete)  # LGES's initial state
    assert _is_factor_model(pair_mask(full, 0, 1), complete)  # Alg. 1 line 13 candidate
    assert _is_factor_model(single_mask(full, 3, 2), complete)  # {2} is nested in {0, 1, 2, 3}
    two_groups = single_mask(single_mask(full, 0, 0), 1, 1)  # {0} and {1} are not nested
    assert not _is_factor_model(two_groups, complete)
    chain = np.eye(m, k=-1, dtype=bool)  # an incomplete latent DAG needs B
    assert not _is_factor_model(full, chain)


def test_factor_path_and_general_path_reach_the_same_optimum(sample_graph, initial_optimum):
    # The factor path drops B (Phi = I) for complete DAGs with nested supports; the general path keeps
    # (Lambda, B, psi). Both describe the same set of Sigma, so from the same start and with restarts
    # the general path must not find a lower f.
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    parent = initial_optimum.params
    mask = single_mask(spec.loadings, 2, 3)
    assert _is_factor_model(mask, spec.parents)
    f_factor, params, converged, _ = fit_specs(mask[None], spec.parents, S, [candidate_starts(parent, mask)])
    assert converged[0]
    assert np.all(params[0].B == 0) and np.all(params[0].Lambda[~mask] == 0)
    assert abs(discrepancy(params[0], S) - f_factor[0]) < 1e-10
    from latentsem.score import _fit_groups_general

    starts = candidate_starts(parent, mask, n_random=3, random_state=0)
    f_general, _, _, _ = _fit_groups_general(np.broadcast_to(mask, (len(starts),) + mask.shape),
                                             np.broadcast_to(spec.parents, (len(starts),) + spec.parents.shape),
                                             S, starts, PSI_FLOOR * np.diag(S), 500, None)
    assert f_factor[0] <= f_general.min() + 1e-6
    # One restricted item is absorbed by the rotation: the parent's optimum (REFERENCE.md section 8).
    assert abs(f_factor[0] - initial_optimum.f) < 1e-9


def test_rotated_start_keeps_the_parents_sigma_for_one_restricted_item(sample_graph, initial_optimum):
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    parent = initial_optimum.params
    Sigma = parent.implied_covariance()
    for i, k in [(0, 0), (4, 2), (9, 4)]:
        start = rotated_start(parent, single_mask(spec.loadings, i, k))
        np.testing.assert_allclose(start.implied_covariance(), Sigma, rtol=0, atol=1e-12)
    # A pair keeps its two items' common direction: the masked start loses less than the zeroed one.
    mask = pair_mask(spec.loadings, 0, 1)
    rotated, zeroed = candidate_starts(parent, mask)
    assert discrepancy(rotated, S) < discrepancy(zeroed, S)
    assert rotated_start(parent, single_mask(single_mask(spec.loadings, 0, 0), 1, 1)) is None  # not nested


def test_candidate_starts_are_deterministic_and_restarts_keep_the_best(sample_graph, initial_optimum):
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    parent = initial_optimum.params
    mask = pair_mask(spec.loadings, 2, 5)
    a = candidate_starts(parent, mask, n_random=2, random_state=3)
    b = candidate_starts(parent, mask, n_random=2, random_state=3)
    assert len(a) == 4
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.Lambda, y.Lambda)
        np.testing.assert_array_equal(x.psi, y.psi)
    f_each, _, _, n_each = fit_specs(np.broadcast_to(mask, (4,) + mask.shape), spec.parents, S, a)
    f_best, params, _, n_all = fit_specs(mask[None], spec.parents, S, [a])
    assert f_best[0] == f_each.min()
    assert n_all[0] == n_each.sum()
    assert abs(discrepancy(params[0], S) - f_best[0]) < 1e-10
    # f_lower: once a start reaches the bound, the member's other starts are skipped.
    single = single_mask(spec.loadings, 1, 0)
    starts = candidate_starts(parent, single)
    f_skip, _, _, n_skip = fit_specs(single[None], spec.parents, S, [starts], f_lower=initial_optimum.f)
    f_one, _, _, n_one = fit_specs(single[None], spec.parents, S, starts[:1])
    assert f_skip[0] == f_one[0] and n_skip[0] == n_one[0]


def test_converged_fits_meet_the_gradient_tolerance(sample_graph, initial_optimum):
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    masks = [pair_mask(spec.loadings, i, j) for i, j in [(0, 1), (2, 7), (5, 9)]] + [single_mask(spec.loadings, 3, 1)]
    starts = [candidate_starts(initial_optimum.params, mk) for mk in masks]
    f, params, converged, _ = fit_specs(np.stack(masks), spec.parents, S, starts)
    assert converged.all()
    floor = PSI_FLOOR * np.diag(S)
    d = np.diag(S)
    for k, mk in enumerate(masks):
        gM, gpsi = factor_gradient(params[k].Lambda, params[k].psi, S)
        at_floor = params[k].psi <= floor * (1 + 1e-9)
        assert np.all(gpsi[at_floor] >= 0)  # KKT: the bound is active only when f wants psi lower
        assert np.abs(gpsi[~at_floor] * d[~at_floor]).max() < 1e-8
        # Every loading on the mask, the echelon zeros that fix the rotation included: restricting those
        # loses no Sigma, so the optimum is stationary in all of them.
        assert np.abs(gM * np.sqrt(d)[:, None])[mk].max() < 1e-7


def test_exact_refit_agrees_with_a_converged_scipy_fit():
    # Small Phase-1 candidates (8 items, 4 latents), scipy L-BFGS-B with an analytic gradient and tight
    # tolerances: (a) from the same rotated warm start it reaches the engine's f to 1e-6 (for the pair
    # (0, 1), left out of (a), it stalls 2.6e-5 above the engine after 1700 iterations: measured), and
    # (b) from the engine's end point it finds nothing lower: the engine's point is a converged optimum.
    from scipy.optimize import minimize

    truth = random_gnfm(4, n_groups=(2, 2))
    S = standardized_sample_covariance(truth, 7)
    p = S.shape[0]
    m = p // 2
    spec = ScoreSpec.from_structure(initial_state(truth))
    parent = score_ML(initial_state(truth), S, N, random_state=0).params
    floor = PSI_FLOOR * np.diag(S)
    masks = [pair_mask(spec.loadings, 0, 1), pair_mask(spec.loadings, 2, p - 1), single_mask(spec.loadings, 1, 2)]
    starts = [candidate_starts(parent, mk) for mk in masks]
    f_engine, params, converged, _ = fit_specs(np.stack(masks), spec.parents, S, starts)
    assert converged.all()
    for k, mk in enumerate(masks):
        idx = np.nonzero(mk)

        def fun(x):
            M = np.zeros((p, m))
            M[idx] = x[:len(idx[0])]
            psi = x[len(idx[0]):]
            Sigma = M @ M.T + np.diag(psi)
            value = 0.5 * (np.linalg.slogdet(Sigma)[1] + np.trace(np.linalg.solve(Sigma, S)))
            gM, gpsi = factor_gradient(M, psi, S)
            return value, np.concatenate([gM[idx], gpsi])

        def scipy_fit(start):
            x0 = np.concatenate([start.Lambda[idx], np.maximum(start.psi, floor)])
            return minimize(fun, x0, jac=True, method="L-BFGS-B",
                            bounds=[(None, None)] * len(idx[0]) + [(lo, None) for lo in floor],
                            options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20_000}).fun

        if k > 0:
            assert abs(f_engine[k] - scipy_fit(starts[k][0])) < 1e-6, k
        polished = scipy_fit(params[k])
        assert f_engine[k] - 1e-8 <= polished <= f_engine[k] + 1e-12, k


def test_batched_and_one_per_call_fits_are_bitwise_identical(sample_graph, initial_optimum):
    # Factor-path members (pairs, single rows, with restarts) and general-path members (a sparse latent
    # DAG) in one batch; each member alone must give exactly the same f and parameters.
    truth, S = sample_graph
    spec = ScoreSpec.from_structure(initial_state(truth))
    parent = initial_optimum.params
    masks = [pair_mask(spec.loadings, i, j) for i, j in [(0, 1), (3, 8), (6, 10)]]
    masks += [single_mask(spec.loadings, 2, 4), single_mask(spec.loadings, 7, 0)]
    parents = [spec.parents] * len(masks)
    starts = [candidate_starts(parent, mk, n_random=1, random_state=k) for k, mk in enumerate(masks)]
    chain = np.eye(spec.m, k=-1, dtype=bool)
    masks.append(spec.loadings.copy())
    parents.append(chain)
    starts.append(dag_start(parent, chain))
    f, params, converged, n_iter = fit_specs(np.stack(masks), np.stack(parents), S, starts)
    assert not _is_factor_model(masks[-1], chain)
    for k in range(len(masks)):
        f1, p1, c1, n1 = fit_specs(masks[k][None], parents[k], S, starts[k:k + 1])
        assert f1[0] == f[k] and c1[0] == converged[k] and n1[0] == n_iter[k], k
        for name in ("Lambda", "B", "psi"):
            np.testing.assert_array_equal(getattr(p1[0], name), getattr(params[k], name))
    # And in another order, in a different batch.
    order = [5, 2, 0, 4, 1, 3]
    f_rev, _, _, _ = fit_specs(np.stack([masks[k] for k in order]), np.stack([parents[k] for k in order]), S,
                               [starts[k] for k in order])
    np.testing.assert_array_equal(f_rev, f[order])
