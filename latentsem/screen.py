"""Deciding LGES Phase-1 deletions: a rotation-invariant screen, exact refits only near the threshold.

A Phase-1 candidate on LGES's initial state (Definition 3: every latent ->
every item, complete latent graph) restricts some items J to a set R of
r latents. LGES keeps the deletion when the score drop
``f_candidate - f_parent`` (per-sample scale, f = (log det Sigma +
tr(Sigma^-1 S)) / 2, so L = -N f in equation 3) is within a tolerance t
(Alg. 1 lines 10 and 16). An exact refit (:func:`latentsem.score.fit_specs`)
costs tens of milliseconds per candidate; this module decides most
candidates in microseconds and refits only those whose decision is in doubt.

* **Screen** (:func:`deletion_screen`). The parent's Sigma = M M' + Psi is
  invariant under the rotation M -> M Q (Lambda -> Lambda A,
  Phi -> A^-1 Phi A^-T), which absorbs the restriction to first order, so the
  textbook Wald and Lagrange-multiplier statistics fail here (REFERENCE.md
  section 8). A rotation-invariant form works: with every other item keeping
  all latents, "items J load on r common latents only" is the constraint
  rank(Sigma[J, rest]) <= r, whose likelihood ratio against the parent's
  fitted Sigma is closed-form (Anderson 1951),

      screen = -1/2 sum_{i > r} log(1 - rho_i^2),

  rho the canonical correlations of J with the rest in Sigma. With
  Omega = Sigma^-1, 1 / (1 - rho_i^2) are the eigenvalues of
  Sigma_JJ Omega_JJ, so one |J| x |J| eigenproblem per candidate. It depends
  on Sigma only, hence is rotation invariant; its Spearman correlation with
  the exact drop was 0.97-0.999 in the probe (REFERENCE.md section 8).
* **Band**. The screen decides alone when it is far from the threshold:
  accept when screen <= t / band, reject when screen > t * band. In between
  the candidate is refitted exactly.
* **Sound early acceptance**. f after any iteration of a refit bounds the
  candidate's optimum from above, so a refit stops as soon as its running f
  is within t of the parent's (``fit_specs(f_accept=f_parent + t)``). There is
  no sound early reject: a rejection needs the converged refit. A refitted
  decision therefore equals the decision of the exact refit from the same
  starts: an early acceptance implies the exact refit accepts too (its f can
  only be lower), and a rejection ran the same starts to the same end.

Measured (reports/benchmarks/screen_agreement.md, every first-step pair of
12 simulated graphs, 1352 candidates): with the default band 3 the decisions
equal the exact refits' in all 1352 at LGES's LR tolerance, and in
1351 at the paper's delta (one pair's exact drop was 1.1e-3 < delta while its
screen was 5.7e-3 > 3 delta: the candidate's refit found an optimum lower than
the screen's rank-only view predicts); band 6 matched all 1352 at delta.

The screen does not describe candidates of the kind "item x keeps two latents
already found" (Spearman -0.49 to 0.87 in the probe), nor parents other than
the initial state: :func:`deletion_screen` returns NaN for them and
:func:`decide_deletions` refits them exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .score import Params, candidate_starts, fit_specs

#: Default band: refit exactly when t / 3 < screen <= 3 t (REFERENCE.md section 8: 0 wrong decisions of 800).
DEFAULT_BAND = 3.0


def within_tolerance(f, f_parent, tolerance):
    """Alg. 1 lines 10/16: is the candidate's f within ``tolerance`` of its parent's?

    The one comparison used by early acceptance (``f_accept = f_parent + t``),
    by refitted decisions and by the exact reference decision, so that all
    three round identically at the threshold.
    """
    return np.asarray(f) <= np.asarray(f_parent) + np.asarray(tolerance)


def pair_masks(p, m):
    """Loading masks of Alg. 1's first step (k = 1) on the initial state: each item pair kept on one latent.

    Returns an array of shape (p (p - 1) / 2, p, m); every other item keeps all
    m latents (Definition 3). Pairs come in (0, 1), (0, 2), ... order.
    """
    masks = []
    for i in range(p):
        for j in range(i + 1, p):
            mask = np.ones((p, m), dtype=bool)
            mask[[i, j]] = False
            mask[[i, j], 0] = True
            masks.append(mask)
    return np.stack(masks)


def rank_constraint(mask, parent_mask=None):
    """The rank constraint a Phase-1 candidate imposes: ``(J, r)``, or None when the screen does not apply.

    Applies when the parent has every loading (Definition 3's state; the
    default ``parent_mask``) and the candidate's restricted items J (the rows
    of ``mask`` that lost loadings) all keep the same r latents. Then the
    candidate is the parent with rank(Sigma[J, rest]) <= r (up to rotation).
    """
    mask = np.asarray(mask, dtype=bool)
    if parent_mask is not None and not np.asarray(parent_mask, dtype=bool).all():
        return None
    restricted = np.flatnonzero(~mask.all(axis=1))
    if restricted.size == 0 or restricted.size == mask.shape[0]:
        return None
    kept = mask[restricted]
    if not (kept == kept[0]).all():
        return None
    return restricted, int(kept[0].sum())


def canonical_rank_statistic(Sigma, J, r, precision=None):
    """-1/2 sum_{i > r} log(1 - rho_i^2) of items J against the rest in ``Sigma``.

    The likelihood ratio (per-sample scale) of rank(Sigma[J, rest]) <= r when
    the rest of the model is saturated (Anderson 1951). ``precision`` is
    Sigma^-1 (pass it when screening many candidates of one parent). Zero when
    the constraint is vacuous (|J| <= r).
    """
    J = np.asarray(J)
    if J.size <= r:
        return 0.0
    Omega = np.linalg.inv(Sigma) if precision is None else precision
    ix = np.ix_(J, J)
    # Sigma_JJ^1/2 Omega_JJ Sigma_JJ^1/2 is symmetric with the eigenvalues 1 / (1 - rho^2) of Sigma_JJ Omega_JJ.
    w, v = np.linalg.eigh(Sigma[ix])
    half = (v * np.sqrt(np.maximum(w, 1e-300))) @ v.T
    ev = np.linalg.eigvalsh(half @ Omega[ix] @ half)
    ev = np.maximum(ev, 1.0)[: J.size - r]  # ascending: the |J| - r smallest canonical correlations
    return 0.5 * float(np.log(ev).sum())


def deletion_screen(parent, masks, parent_mask=None):
    """The rotation-invariant screen of each candidate (NaN where it does not apply).

    Parameters
    ----------
    parent : Params or ndarray of shape (p, p)
        The parent's optimum, or its fitted Sigma (the screen depends on Sigma
        only, so any rotation of the parent's parameters gives the same values).
    masks : ndarray of bool, shape (K, p, m)
        Candidate loading masks.
    parent_mask : ndarray of bool, shape (p, m), optional
        The parent's loading mask; default: every loading (Definition 3).

    Returns
    -------
    ndarray, shape (K,)
        :func:`canonical_rank_statistic` of each candidate's rank constraint
        (:func:`rank_constraint`) in the parent's Sigma; NaN for candidates
        the screen does not describe.
    """
    Sigma = parent.implied_covariance() if isinstance(parent, Params) else np.asarray(parent, dtype=float)
    precision = np.linalg.inv(Sigma)
    screen = np.full(len(masks), np.nan)
    for k, mask in enumerate(masks):
        constraint = rank_constraint(mask, parent_mask)
        if constraint is not None:
            screen[k] = canonical_rank_statistic(Sigma, *constraint, precision=precision)
    return screen


@dataclass(frozen=True)
class DeletionDecisions:
    """Decisions on a batch of Phase-1 candidates (:func:`decide_deletions`).

    Attributes
    ----------
    accept : ndarray of bool, shape (K,)
        Whether each deletion is within the tolerance.
    screen : ndarray, shape (K,)
        The screen statistic (NaN where it does not apply).
    refitted : ndarray of bool, shape (K,)
        Candidates decided by an exact refit (screen within the band, or NaN).
    change : ndarray, shape (K,)
        The change the decision rests on: the screen for screened candidates;
        f_refit - f_parent for refitted ones. An accepted refit stopped as
        soon as its running f was within the tolerance (early acceptance), so
        its change is an upper bound of the optimum's; a rejected refit ran
        every start to convergence.
    n_iter : ndarray of int, shape (K,)
        Newton iterations spent (0 for screened candidates).
    """

    accept: np.ndarray
    screen: np.ndarray
    refitted: np.ndarray
    change: np.ndarray
    n_iter: np.ndarray


def decide_deletions(masks, parents, S, parent, f_parent, tolerance, *, band=DEFAULT_BAND, parent_mask=None,
                     n_random=1, random_state=None, max_iter=500):
    """Accept or reject each Phase-1 deletion: screen, then an exact refit only near the threshold.

    Parameters
    ----------
    masks : ndarray of bool, shape (K, p, m)
        Candidate loading masks (Phase 1 of LGES on its initial state).
    parents : ndarray of bool, shape (m, m) or (K, m, m)
        Latent parent masks, as for :func:`latentsem.score.fit_specs`.
    S : ndarray, shape (p, p)
        Sample covariance (divisor N).
    parent : Params
        The parent state's optimum.
    f_parent : float
        The parent's f (per-sample scale).
    tolerance : float or ndarray, shape (K,)
        The tolerance t of each deletion on the per-sample scale (e.g. LGES's
        ``_tolerance_of(df)``: chi2_{1-alpha}(df) / 2N, or delta).
    band : float
        Refit exactly when t / band < screen <= t * band (``band >= 1``);
        larger is safer and slower.
    parent_mask : ndarray of bool, shape (p, m), optional
        The parent's loading mask; default every loading (Definition 3).
    n_random : int
        Random restarts per refit (:func:`latentsem.score.candidate_starts`).
    random_state : int, or sequence of int of length K, optional
        Seed of each refitted candidate's restarts; a sequence gives candidate
        k the seed ``random_state[k]``, so that its refit is the same whatever
        batch it is decided in.
    max_iter : int
        Newton iterations per start.

    Returns
    -------
    DeletionDecisions
    """
    if band < 1:
        raise ValueError(f"The 'band' parameter of decide_deletions must be a float in [1, inf). Got {band!r} instead.")
    masks = np.asarray(masks, dtype=bool)
    K = masks.shape[0]
    tolerance = np.broadcast_to(np.asarray(tolerance, dtype=float), (K,))
    screen = deletion_screen(parent, masks, parent_mask)
    accept = screen <= tolerance / band
    refitted = np.isnan(screen) | ((screen > tolerance / band) & (screen <= tolerance * band))
    change = screen.copy()
    n_iter = np.zeros(K, dtype=int)
    todo = np.flatnonzero(refitted)
    if todo.size:
        seeds = _seeds(random_state, K)
        starts = [candidate_starts(parent, masks[k], n_random=n_random, random_state=seeds[k]) for k in todo]
        parents = np.asarray(parents, dtype=bool)
        sub_parents = parents if parents.ndim == 2 else parents[todo]
        f_accept = f_parent + tolerance[todo]
        # f_lower: a deletion cannot lower f, so a start that ends at the parent's f ends the candidate.
        f, _, _, n_iter[todo] = fit_specs(masks[todo], sub_parents, S, starts, max_iter=max_iter,
                                          f_accept=f_accept, f_lower=f_parent)
        change[todo] = f - f_parent
        accept[todo] = within_tolerance(f, f_parent, tolerance[todo])
    return DeletionDecisions(accept, screen, refitted, change, n_iter)


def _seeds(random_state, K):
    if random_state is None or np.isscalar(random_state):
        rng = np.random.default_rng(random_state)
        return [int(s) for s in rng.integers(0, 2**63 - 1, size=K)]
    seeds = list(random_state)
    if len(seeds) != K:
        raise ValueError(f"random_state has {len(seeds)} seeds for {K} candidates; pass one per candidate.")
    return seeds
