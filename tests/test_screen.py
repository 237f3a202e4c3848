"""The decision path for Phase-1 deletions: rotation-invariant screen, band, exact refits, early acceptance.

The reference decision is the exact refit's: ``fit_specs`` from the same
``candidate_starts`` (rotated and zeroed warm starts, one random restart),
``f_candidate <= f_parent + t``. Graphs are small GNFMs (9-11 items) at
N = 1000, on LGES's initial state, with every line-13 pair candidate at k = 1
(Alg. 1: items {i, j} caused by one latent only).
"""

import math

import numpy as np
import pytest

from latentsem.score import candidate_starts, efa_ml, fit_specs, params_from_phi
from latentsem.screen import (
    canonical_rank_statistic, decide_deletions, deletion_screen, pair_masks, rank_constraint, within_tolerance,
)
from latentsem.simulate.gnfm import random_gnfm, simulate_data

N = 1000
GRAPH_SEEDS = [5, 8, 9]  # 11, 11 and 9 items; both decisions occur at both tolerances


@pytest.fixture(autouse=True, scope="module")
def single_threaded_blas():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def lr_tolerance(p):
    """LGES's LR tolerance for a pair at k = 1: chi2_{1 - 1/N}(df) / 2N, df = (2 - 1)(p - 2 - 1)."""
    from scipy.stats import chi2

    return chi2.ppf(1 - 1 / N, p - 3) / (2 * N)


DELTA = 0.25 * math.log(N) / N  # the paper's delta (LGES's default delta_scale)


def initial_state_problem(seed):
    """S, the initial state's optimum (efa_ml polished by fit_specs), its f and the pair candidates."""
    truth = random_gnfm(seed, n_groups=(2, 3))
    X = simulate_data(truth, n=N, random_state=100 + seed).to_numpy()
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    S = X.T @ X / N
    p = S.shape[0]
    m = p // 2
    parents = np.tril(np.ones((m, m), dtype=bool), -1)
    f, params, _, _ = fit_specs(np.ones((1, p, m), dtype=bool), parents, S, [efa_ml(S, m)])
    return S, parents, params[0], float(f[0]), pair_masks(p, m)


@pytest.fixture(scope="module", params=GRAPH_SEEDS)
def problem(request):
    """The problem and its exact refits: every pair candidate refitted from candidate_starts(..., seed k)."""
    S, parents, parent, f_parent, masks = initial_state_problem(request.param)
    starts = [candidate_starts(parent, mask, n_random=1, random_state=k) for k, mask in enumerate(masks)]
    f_exact, _, _, n_exact = fit_specs(masks, parents, S, starts, f_lower=f_parent)
    return S, parents, parent, f_parent, masks, f_exact, n_exact


# ------------------------------------------------------------------ screen
def test_screen_is_invariant_to_rotations_of_the_parent(problem):
    # Lambda -> Lambda A, Phi -> A^-1 Phi A^-T leaves Sigma unchanged; the screen must not move.
    S, _, parent, _, masks, _, _ = problem
    m = parent.Lambda.shape[1]
    A = np.random.default_rng(0).normal(size=(m, m)) + 2 * np.eye(m)
    A_inv = np.linalg.inv(A)
    rotated = params_from_phi(parent.Lambda @ A, A_inv @ parent.latent_covariance() @ A_inv.T, parent.psi)
    assert not np.allclose(rotated.Lambda, parent.Lambda)
    np.testing.assert_allclose(rotated.implied_covariance(), parent.implied_covariance(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(deletion_screen(rotated, masks), deletion_screen(parent, masks), rtol=1e-8, atol=1e-12)


def test_screen_is_the_rank_likelihood_ratio_of_the_block():
    # On a covariance whose J-block has rank 1 against the rest the statistic is 0; a rank-2 block is not.
    rng = np.random.default_rng(1)
    p = 8
    loading = rng.normal(size=(p, 2))
    loading[[0, 1], 1] = 0.0  # items 0 and 1 reach the rest through the first factor only
    Sigma = loading @ loading.T + np.diag(rng.uniform(0.3, 1.0, p))
    assert canonical_rank_statistic(Sigma, [0, 1], 1) == pytest.approx(0.0, abs=1e-12)
    assert canonical_rank_statistic(Sigma, [0, 2], 1) > 1e-3
    assert canonical_rank_statistic(Sigma, [0, 2], 2) == 0.0  # vacuous: |J| <= r


def test_screen_applies_only_to_rows_restricted_to_one_common_support():
    p, m = 6, 3
    full = np.ones((p, m), dtype=bool)
    pair = full.copy()
    pair[[1, 4]] = [True, False, False]
    J, r = rank_constraint(pair)
    assert list(J) == [1, 4] and r == 1
    split = pair.copy()
    split[4] = [False, True, False]  # the two items keep different latents: not a rank constraint of one block
    assert rank_constraint(split) is None
    assert rank_constraint(full) is None  # nothing deleted
    sparse_parent = full.copy()
    sparse_parent[0, 2] = False
    assert rank_constraint(pair, parent_mask=sparse_parent) is None
    Sigma = np.eye(p) + 0.3
    screen = deletion_screen(Sigma, np.stack([pair, split]))
    assert np.isfinite(screen[0]) and np.isnan(screen[1])


# ---------------------------------------------------------------- decisions
@pytest.mark.parametrize("criterion", ["lr", "delta"])
def test_decisions_equal_those_of_exact_refits_for_every_first_step_pair(problem, criterion):
    S, parents, parent, f_parent, masks, f_exact, _ = problem
    p = S.shape[0]
    tol = lr_tolerance(p) if criterion == "lr" else DELTA
    exact = within_tolerance(f_exact, f_parent, tol)
    decided = decide_deletions(masks, parents, S, parent, f_parent, tol, random_state=np.arange(len(masks)))
    wrong = np.flatnonzero(decided.accept != exact)
    assert wrong.size == 0, (wrong, (f_exact - f_parent)[wrong], decided.screen[wrong])
    assert exact.any() and not exact.all()  # both outcomes occur: the comparison decides something
    assert decided.refitted.sum() < len(masks) / 4  # the screen decides most candidates alone
    # Refitted candidates: the change is the refit's (an upper bound of the exact one when accepted early).
    r = decided.refitted
    assert np.all(decided.change[r] >= f_exact[r] - f_parent - 1e-12)
    np.testing.assert_array_equal(decided.n_iter[~r], 0)


def test_early_acceptance_never_accepts_outside_the_tolerance(problem):
    # Refit every candidate (band = inf) at tolerances inside the range of the exact drops, where running
    # fits cross the threshold on the way: an accepted refit must be within the tolerance at its exact optimum.
    S, parents, parent, f_parent, masks, f_exact, n_exact = problem
    drops = f_exact - f_parent
    n_early = 0
    for tol in np.quantile(drops[drops > 0], [0.05, 0.2, 0.5]):  # a tolerance is positive
        decided = decide_deletions(masks, parents, S, parent, f_parent, tol, band=np.inf,
                                   random_state=np.arange(len(masks)))
        assert decided.refitted.all()
        accepted = np.flatnonzero(decided.accept)
        assert np.all(drops[accepted] <= tol), accepted[drops[accepted] > tol]
        np.testing.assert_array_equal(decided.accept, within_tolerance(f_exact, f_parent, tol))
        assert np.all(decided.n_iter <= n_exact)
        n_early += int(np.sum(decided.n_iter[accepted] < n_exact[accepted]))
    assert n_early > 0  # some refits did stop early


def test_decide_deletions_rejects_a_band_below_one(problem):
    S, parents, parent, f_parent, masks, _, _ = problem
    with pytest.raises(ValueError, match="'band' parameter of decide_deletions must be"):
        decide_deletions(masks[:1], parents, S, parent, f_parent, DELTA, band=0.5)


def test_decisions_do_not_depend_on_the_batch(problem):
    S, parents, parent, f_parent, masks, _, _ = problem
    tol = np.full(len(masks), DELTA)
    seeds = np.arange(len(masks))
    batch = decide_deletions(masks, parents, S, parent, f_parent, tol, random_state=seeds)
    for k in np.flatnonzero(batch.refitted)[:3].tolist() + [0]:
        alone = decide_deletions(masks[k:k + 1], parents, S, parent, f_parent, tol[k], random_state=[seeds[k]])
        assert alone.accept[0] == batch.accept[k] and alone.change[0] == batch.change[k]
        assert alone.n_iter[0] == batch.n_iter[k]
