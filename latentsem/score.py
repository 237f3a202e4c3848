"""The maximum-likelihood score of a partially observed linear SEM.

LGES paper (seed 002), section 2.2: for a structure G and the sample
covariance S (divisor N),

    score_ML(G, S) = max over (F, Omega) with supp(F) in supp(F_G) of
                     L = -(N/2) (tr(Sigma^-1 S) + log det Sigma)        (eqs. 2-3)

Higher is better. For generalized N factor models (observed variables are
leaves, Definition 2) Proposition 1 reduces to

    Sigma = Lambda Phi Lambda' + Psi,   Phi = T T',   T = (I - B)^-1,

with Lambda the (p, m) loadings on the structure's latent -> observed edges,
B the latent -> latent coefficients (``B[i, j]`` is the effect of latent j on
latent i, strictly lower triangular in a topological order) and Psi the
diagonal unique variances. The latent disturbance variances are fixed at 1:
with every latent's loadings free this loses nothing (an LDL' factor of any
Phi = T D T' can be absorbed into Lambda's columns and T's entries without
changing either support), and it removes the scale indeterminacy.

We minimise the per-sample discrepancy ``f = (log det Sigma + tr(Sigma^-1 S)) / 2``,
so ``L = -N f``. Two optimisers share one entry point, :func:`fit_specs`:

* Factor models: a complete latent DAG whose items' latent sets are nested
  (LGES's initial state and every Phase-1 candidate taken from it). There B is
  redundant: Lambda Phi Lambda' = M M' with M = Lambda chol(Phi) on the same
  support, so the engine fits Sigma = M M' + Psi with B = 0. The rotation
  freedom M -> M Q (REFERENCE.md section 8) is removed by an echelon pattern of
  zeros, which loses no Sigma, and the exact Hessian of f (cheap: O((p m)^2))
  drives Levenberg-Marquardt-damped Newton steps, which converge
  quadratically; a fit stops when the largest scaled free gradient entry is
  below ``gtol`` (1e-8).
* Everything else (sparse latent DAGs of Phase 2): Levenberg-Marquardt
  Fisher scoring in (Lambda, B, psi), compiled per member with numba
  (:mod:`latentsem._lm`). Every derivative dSigma/dtheta_a has the rank-2 form
  ``c_a (u_a v_a' + v_a u_a')`` with u_a, v_a columns of Z = [I, Lambda T,
  Lambda Phi], so with P = Sigma^-1 the gradient ``g_a = c_a u_a' P (Sigma - S) P v_a``
  and the Fisher information ``F_ab = tr(P dSigma_a P dSigma_b) / 2`` are read
  off the two (p + 2m)-square matrices Z' P (Sigma - S) P Z and Z' P Z.

Local optima exist on these structures (REFERENCE.md section 8): a candidate
is warm-started from its parent's optimum (:func:`candidate_starts`: rotated
towards the candidate's mask, then zeroed) and the best of its starts is kept.
A member's arithmetic never depends on the rest of the batch. Unique
variances are bounded below by a small floor so that Heywood cases, which are
certain on LGES's initial state, are harmless; they are reported on the result.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np

from .exceptions import ConvergenceWarning, StructureError
from .graph import topological_order

logger = logging.getLogger(__name__)

#: Lower bound of each unique variance, relative to the item's sample variance.
PSI_FLOOR = 1e-6


# --------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class ScoreSpec:
    """The support of (Lambda, B) for one structure, latents in topological order.

    Attributes
    ----------
    loadings : ndarray of bool, shape (p, m)
        ``loadings[i, k]`` True when latent k -> observed i.
    parents : ndarray of bool, shape (m, m)
        ``parents[i, j]`` True when latent j -> latent i; strictly lower triangular.
    latent : tuple of str
        Latent names in the (topological) order used by the matrices.
    """

    loadings: np.ndarray
    parents: np.ndarray
    latent: tuple = ()

    @property
    def p(self):
        return self.loadings.shape[0]

    @property
    def m(self):
        return self.loadings.shape[1]

    @classmethod
    def from_structure(cls, structure):
        """Spec of a structure (a consistent extension of its latent CPDAG is used)."""
        if structure.covariances():
            raise StructureError(
                "score_ML scores generalized N factor models, which have no residual covariances; "
                "fit models with covariance edges with latentsem.fit.fit_model instead."
            )
        dag = structure.to_dag()
        D = dag.latent_directed()
        order = topological_order(D)
        loadings = dag.loading_mask()[:, order]
        parents = D[np.ix_(order, order)].T
        return cls(loadings, parents, tuple(dag.latent[i] for i in order))


# ------------------------------------------------------------------------- params
@dataclass
class Params:
    """Model parameters; ``Lambda`` (p, m), ``B`` (m, m), ``psi`` (p,)."""

    Lambda: np.ndarray
    B: np.ndarray
    psi: np.ndarray

    def copy(self):
        return Params(self.Lambda.copy(), self.B.copy(), self.psi.copy())

    def latent_covariance(self):
        """Phi = (I - B)^-1 (I - B)^-T (disturbance variances fixed at 1)."""
        T = _unit_lower_inverse(self.B)
        return T @ T.T

    def implied_covariance(self):
        """Sigma = Lambda Phi Lambda' + Psi (Proposition 1 for GNF models)."""
        return self.Lambda @ self.latent_covariance() @ self.Lambda.T + np.diag(self.psi)

    def standardized_loading(self, j, cols):
        """The latents ``cols``' joint standardized loading on item j: sqrt(lambda Phi lambda' / Sigma_jj).

        For the latents of one group it is invariant to rotations inside the
        group, unlike the loadings of its single latents.
        """
        lam = self.Lambda[j, cols]
        Phi = self.latent_covariance()[np.ix_(cols, cols)]
        return float(np.sqrt(max(lam @ Phi @ lam, 0.0) / self.implied_covariance()[j, j]))


@dataclass(frozen=True)
class ScoreResult:
    """The optimum of equation (2) for one structure.

    Attributes
    ----------
    f : float
        The minimised per-sample discrepancy ``(log det Sigma + tr(Sigma^-1 S)) / 2``.
    log_likelihood : float
        The paper's score ``L = -N f`` (equation 3; higher is better). It omits
        lavaan's constant ``-N p log(2 pi) / 2``.
    params : Params
        The optimum (one point of a possibly flat optimum set: compare ``f`` or
        ``Sigma`` across fits, never parameters).
    converged : bool
        Whether the optimiser met its tolerance within ``max_iter``.
    n_iter : int
        Iterations used by the best start.
    heywood : tuple of int
        Indices of observed variables whose unique variance sits at the floor.
    """

    f: float
    log_likelihood: float
    params: Params = field(repr=False)
    converged: bool
    n_iter: int
    heywood: tuple = ()

    @property
    def sigma(self):
        return self.params.implied_covariance()


# ------------------------------------------------------------ batched internals
class _Layout:
    """Parameter vector layout shared by a batch: supported loadings, B's lower triangle, psi.

    Only loadings inside ``support`` (the union of the batch's loading masks)
    are parameters, so sparse structures (Phase 2 of LGES, CFA models) solve a
    much smaller system than the p * m loadings of LGES's initial state.
    """

    def __init__(self, p, m, support=None):
        self.p, self.m = p, m
        support = np.ones((p, m), dtype=bool) if support is None else np.asarray(support, dtype=bool)
        # int64: the compiled general path (latentsem._lm) takes them as they are.
        self.lam_rows, self.lam_cols = (a.astype(np.int64) for a in np.nonzero(support))
        self.rows, self.cols = (a.astype(np.int64) for a in np.tril_indices(m, -1))  # B[i, j]: latent j -> latent i
        self.n_lambda = len(self.lam_rows)
        self.n_b = len(self.rows)
        self.q = self.n_lambda + self.n_b + p
        # dSigma/dtheta_a = c_a (u_a v_a' + v_a u_a'), u_a and v_a columns of Z = [I, Lambda T, Lambda Phi]
        # (latentsem._lm): their column indices and c_a.
        self.iu = np.concatenate([self.lam_rows, p + self.rows, np.arange(p, dtype=np.int64)])
        self.iv = np.concatenate([p + m + self.lam_cols, p + m + self.cols, np.arange(p, dtype=np.int64)])
        self.c = np.concatenate([np.ones(self.n_lambda + self.n_b), np.full(p, 0.5)])

    def active(self, loadings, parents):
        """Boolean (K, q) mask of the free parameters of each batch member."""
        K = loadings.shape[0]
        psi = np.ones((K, self.p), dtype=bool)
        return np.concatenate(
            [loadings[:, self.lam_rows, self.lam_cols], parents[:, self.rows, self.cols], psi], axis=1
        )

    def pack(self, Lambda, B, psi):
        return np.concatenate(
            [Lambda[:, self.lam_rows, self.lam_cols], B[:, self.rows, self.cols], psi], axis=1
        )

    def unpack(self, theta):
        K = theta.shape[0]
        Lambda = np.zeros((K, self.p, self.m))
        Lambda[:, self.lam_rows, self.lam_cols] = theta[:, : self.n_lambda]
        B = np.zeros((K, self.m, self.m))
        B[:, self.rows, self.cols] = theta[:, self.n_lambda : self.n_lambda + self.n_b]
        psi = theta[:, self.n_lambda + self.n_b :]
        return Lambda, B, psi


def _unit_lower_inverse(B):
    """(I - B)^-1 for strictly lower triangular B: the finite series I + B + ... + B^(m-1).

    Exact (B is nilpotent), batched, and free of pivoting, so it never fails.
    """
    m = B.shape[-1]
    eye = np.broadcast_to(np.eye(m), B.shape)
    T = eye.copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(m - 1):
            T = eye + B @ T
    return T


@dataclass
class _BatchOutcome:
    theta: np.ndarray
    f: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray


def _lm_batch(layout, theta, active, S, floor, max_iter=500, stall_tol=1e-8, stall_window=10,
              gtol=1e-8, f_accept=None):
    """Projected Levenberg-Marquardt (Fisher scoring) on f, each member compiled (:mod:`latentsem._lm`).

    Inactive parameters stay at 0; unique variances are projected onto
    ``psi >= floor``, and those sitting at the floor with a gradient pushing
    them further down are frozen for the step (an active-set rule). When
    ``f_accept`` is given a member stops as soon as its f is at or below it:
    f after any iteration bounds the optimum from above, so that decision
    ("the candidate is within tolerance") is already sound. A member also stops
    when f fell by less than ``stall_tol`` over its last ``stall_window``
    iterations: factor models have flat directions (rotations, members of a
    latent group sharing all their items) along which damped steps crawl, and
    a latent that is (nearly) a deterministic function of its parents sits at
    B -> infinity with unit disturbance variance, where f approaches its limit
    like 1/B^2.
    """
    from . import _lm

    K = theta.shape[0]
    theta = np.array(theta, dtype=float)
    f_accept = np.full(K, -np.inf) if f_accept is None else np.asarray(f_accept, dtype=float)
    f, converged, n_iter = _lm.lm_batch(
        theta, np.ascontiguousarray(active), np.ascontiguousarray(S, dtype=float), np.asarray(floor, dtype=float),
        layout.m, layout.lam_rows, layout.lam_cols, layout.rows, layout.cols, layout.iu, layout.iv, layout.c,
        int(max_iter), float(stall_tol), int(stall_window), float(gtol), f_accept)
    return _BatchOutcome(theta, f, converged, n_iter)


def _nested_supports(loadings):
    """The distinct latent sets of the items, smallest first, when they are nested; else None."""
    supports = sorted({tuple(np.flatnonzero(row)) for row in loadings if row.any()}, key=len)
    for small, large in zip(supports, supports[1:]):
        if not set(small) <= set(large):
            return None
    return supports


def _is_factor_model(loadings, parents):
    """Whether the structure is the factor model Sigma = M M' + Psi with M free on ``loadings``.

    With a complete latent DAG, Phi = T T' is any positive definite matrix once
    the columns of Lambda carry the scale, so Lambda Phi Lambda' = M M' with
    M = Lambda chol(Phi). Row i of M is sum_k Lambda[i, k] C[k, :], which is
    free on its support exactly when the support is a prefix of the latent
    order; when the items' supports are nested, the latents can be ordered so
    that every support is a prefix (the model is invariant to that order). So
    B is redundant and the model is {M M' + Psi : M on the mask} (B = 0). This
    covers LGES's initial state and every Phase-1 candidate taken from it.
    """
    m = loadings.shape[1]
    if m > 1 and not np.all(parents[np.tril_indices(m, -1)]):
        return False
    return _nested_supports(loadings) is not None


def _echelon(M, mask):
    """Fix the rotation freedom of M M' (Sigma unchanged): returns rotated M and its fixed zeros.

    The orthogonal maps that keep nested supports are block diagonal over the
    support levels (columns a level adds). Within a level block of size s,
    s - 1 items (chosen by pivoted QR for conditioning) are rotated to an
    echelon form: item t loads on the block's first t + 1 columns only. Any M
    can be rotated so (an LQ factorisation), so no optimum is lost, and the
    s(s-1)/2 zeros remove the flat directions (REFERENCE.md section 8).
    """
    from scipy.linalg import qr

    M = M.copy()
    zero = np.zeros(mask.shape, dtype=bool)
    seen = set()
    for support in _nested_supports(mask) or ():
        block = [c for c in support if c not in seen]
        seen.update(support)
        s = len(block)
        if s < 2:
            continue
        rows = np.flatnonzero(mask[:, block].all(axis=1))
        _, _, pivots = qr(M[np.ix_(rows, block)].T, pivoting=True, mode="economic")
        chosen = rows[pivots[: s - 1]]
        Q, _ = np.linalg.qr(M[np.ix_(chosen, block)].T, mode="complete")
        M[:, block] = M[:, block] @ Q
        for t, row in enumerate(chosen):
            zero[row, block[t + 1:]] = True
            M[row, block[t + 1:]] = 0.0
    return M, zero


def _factor_f(M, psi, S_chol):
    """f and the Cholesky factor C of Sigma = M M' + Psi for one member; (inf, None) when not PD.

    f = log det C + ||C^-1 chol(S)||_F^2 / 2: two triangular factorisations, no inverse.
    """
    from scipy.linalg import lapack

    Sigma = M @ M.T
    Sigma.flat[:: Sigma.shape[0] + 1] += psi
    C, info = lapack.dpotrf(Sigma, lower=1, clean=1)
    if info != 0:
        return np.inf, None
    X, info = lapack.dtrtrs(C, S_chol, lower=1)
    return float(np.log(np.diag(C)).sum() + 0.5 * np.sum(X * X)), C


def _precision(C):
    """Sigma^-1 from the lower Cholesky factor of Sigma (upper triangle zero, as ``_factor_f`` leaves it)."""
    from scipy.linalg import lapack

    P, _ = lapack.dpotri(C, lower=1)  # fills the lower triangle; the zero upper one is left alone
    P += np.tril(P, -1).T
    return P


def _factor_gradient_hessian(M, P, S):
    """Gradient and exact Hessian of f in (vec M, psi) for one member, Sigma = M M' + Psi.

    With G = P - W, W = P S P, the gradient is G M (loadings) and diag(G) / 2
    (psi). Differentiating g_a = tr(G dSigma_a) / 2 once more,

        H_ab = -tr(P S_a P S_b) / 2 + tr(P S_a W S_b) + tr(G S_ab) / 2,

    and with dSigma / dM_ik = e_i M_k' + M_k e_i', X = P M, Y = W M, Z = Y - X:

        H[(i,k),(j,l)] = P_ij (M'Y - M'X)_kl + W_ij (M'X)_kl + G_ij delta_kl
                         + X_il Z_jk + Y_il X_jk
        H[(i,k), psi_j] = P_ij Z_jk + W_ij X_jk,   H[psi_i, psi_j] = P_ij (W_ij - P_ij / 2).

    Three Kronecker products and one rank-2 outer product: O((p m)^2).
    """
    p, m = M.shape
    pm = p * m
    W = P @ S @ P
    G = P - W
    X = P @ M
    Y = W @ M
    Z = Y - X
    XtX = M.T @ X
    g = np.empty(pm + p)
    g[:pm] = (G @ M).ravel()
    g[pm:] = 0.5 * np.diag(G)
    H = np.empty((pm + p, pm + p))
    # Preallocated factors instead of np.stack: at these sizes numpy's call overhead dominates.
    A = np.empty((3, p, p))
    A[0], A[1], A[2] = P, W, G
    B = np.empty((3, m, m))
    B[0] = M.T @ Y - XtX
    B[1] = XtX
    B[2] = np.eye(m)
    kron = (A.reshape(3, p * p).T @ B.reshape(3, m * m)).reshape(p, p, m, m).transpose(0, 2, 1, 3)
    U = np.empty((2, p, m))  # index (i, l)
    U[0], U[1] = X, Y
    V = np.empty((2, p, m))  # index (j, k)
    V[0], V[1] = Z, X
    cross = (U.reshape(2, pm).T @ V.reshape(2, pm)).reshape(p, m, p, m).transpose(0, 3, 2, 1)
    H[:pm, :pm] = (kron + cross).reshape(pm, pm)
    H[:pm, pm:] = (P[:, None, :] * Z.T[None, :, :] + W[:, None, :] * X.T[None, :, :]).reshape(pm, p)
    H[pm:, :pm] = H[:pm, pm:].T
    H[pm:, pm:] = P * (W - 0.5 * P)
    return g, H


def _newton_factor_batch(masks, M, psi, S, floor, max_iter=500, gtol=1e-8, f_accept=None):
    """Projected Levenberg-Marquardt-damped Newton steps on f for Sigma = M M' + Psi.

    The exact Hessian (:func:`_factor_gradient_hessian`) is used; the damping
    mu D (D = 1 / scale^2, parameters scaled by the item standard deviations)
    follows Nielsen's (1999) gain-ratio rule after each accepted step, so steps
    become pure Newton steps and converge quadratically once the Hessian is
    positive definite; it is raised while the Hessian is indefinite (Cholesky
    fails) or a step does not lower f.
    The rotation freedom is removed by :func:`_echelon`. Unique variances stay
    at or above ``floor``; one at the floor whose gradient pushes it further
    down is fixed for the step (an active set). A member stops when the
    largest scaled free gradient entry |df/dtheta_a| * scale_a is below
    ``gtol`` (converged), when f reaches ``f_accept`` (converged: sound early
    acceptance), when no damping gives a lower f, or after ``max_iter``
    iterations. Members are solved one after the other on their own free
    parameters, so a member's path never depends on the rest of the batch.
    """
    from scipy.linalg import lapack

    K, p, m = masks.shape
    pm = p * m
    fixed = np.zeros((K, pm + p), dtype=bool)
    M = np.where(masks, M, 0.0)
    for k in range(K):
        M[k], zero = _echelon(M[k], masks[k])
        fixed[k, :pm] = (~masks[k] | zero).ravel()
    d = np.diag(S)
    scale = np.concatenate([np.repeat(np.sqrt(d), m), d])  # loadings ~ item sd, psi ~ item variance
    damping = 1.0 / scale**2
    lower = np.concatenate([np.full(pm, -np.inf), floor])
    theta = np.concatenate([M.reshape(K, pm), np.maximum(psi, floor)], axis=1)
    f = np.full(K, np.inf)
    n_iter = np.zeros(K, dtype=int)
    converged = np.zeros(K, dtype=bool)
    grad_max = np.full(K, np.inf)
    tiny = 4 * np.finfo(float).eps
    S_chol = np.linalg.cholesky(S)
    for k in range(K):
        f[k], C = _factor_f(theta[k, :pm].reshape(p, m), theta[k, pm:], S_chol)
        if C is None:
            continue
        P = _precision(C)
        if f_accept is not None and f[k] <= f_accept[k]:
            converged[k] = True
            continue
        mu, nu = 1e-8, 2.0
        for _ in range(max_iter):
            g, H = _factor_gradient_hessian(theta[k, :pm].reshape(p, m), P, S)
            free = ~(fixed[k] | ((theta[k] <= lower * (1 + 1e-9)) & (g > 0)))
            grad_max[k] = np.abs(g[free] * scale[free]).max(initial=0.0)
            if grad_max[k] < gtol:
                converged[k] = True
                break
            fi = np.flatnonzero(free)
            Hf, gf, Df = H.take(fi, axis=0).take(fi, axis=1), g[fi], damping[fi]
            n_iter[k] += 1
            moved = False
            diag = np.arange(fi.size) * (fi.size + 1)
            while mu <= 1e12:
                A = Hf.copy()
                A.flat[diag] += mu * Df
                C, info = lapack.dpotrf(A, lower=1, clean=0, overwrite_a=1)
                if info != 0:  # indefinite: more damping
                    mu = max(mu * 10.0, 1e-6)
                    continue
                step, _ = lapack.dpotrs(C, gf, lower=1)
                trial = theta[k].copy()
                trial[fi] -= step
                np.maximum(trial, lower, out=trial)
                f_t, C = _factor_f(trial[:pm].reshape(p, m), trial[pm:], S_chol)
                # Equal f is accepted: near the optimum f changes below its rounding error.
                if f_t <= f[k] + tiny * abs(f[k]):
                    # Gain ratio of the actual to the quadratic model's decrease (Nielsen 1999).
                    predicted = gf @ step - 0.5 * step @ (Hf @ step)
                    rho = (f[k] - f_t) / predicted if predicted > 0 else 0.0
                    theta[k], f[k], P = trial, f_t, _precision(C)
                    mu = max(mu * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3), 1e-12)
                    nu = 2.0
                    moved = True
                    break
                mu = max(mu * nu, 1e-6)
                nu *= 2.0
            if not moved:  # no damping lowers f: converged only if the gradient test passed
                break
            if f_accept is not None and f[k] <= f_accept[k]:
                converged[k] = True
                break
    return theta[:, :pm].reshape(K, p, m), theta[:, pm:], f, converged, n_iter, grad_max


def rotated_start(parent, mask):
    """The parent's optimum rotated towards ``mask`` before the removed loadings are zeroed.

    Sigma is invariant under M -> M Q (Q orthogonal, M = Lambda chol(Phi)), so
    the parent's fit can first be rotated so that each restricted item loads
    as much as possible on the latents it keeps: level by level of the nested
    supports, the columns a level adds receive the leading right singular
    vectors of that level's rows (within the directions not yet used). For an
    item restricted to one latent the masked start keeps the parent's f
    exactly (REFERENCE.md section 8). Returns None when the supports of
    ``mask`` are not nested.
    """
    mask = np.asarray(mask, dtype=bool)
    supports = _nested_supports(mask)
    if supports is None:
        return None
    m = mask.shape[1]
    M = parent.Lambda @ np.linalg.cholesky(parent.latent_covariance())
    Q = np.zeros((m, m))
    assigned = []
    for support in supports:
        new = [c for c in support if c not in assigned]
        if not new:
            continue
        rows = [i for i in range(mask.shape[0]) if tuple(np.flatnonzero(mask[i])) == support]
        rest = _orthogonal_complement(Q[:, assigned])
        w = np.linalg.svd(M[rows] @ rest)[2].T if rows else np.eye(rest.shape[1])
        Q[:, new] = rest @ w[:, : len(new)]
        assigned += new
    left = [c for c in range(m) if c not in assigned]
    if left:
        Q[:, left] = _orthogonal_complement(Q[:, assigned])
    return Params(np.where(mask, M @ Q, 0.0), np.zeros((m, m)), parent.psi.copy())


def _orthogonal_complement(U):
    """An orthonormal basis of the complement of the orthonormal columns U."""
    m = U.shape[0]
    if U.shape[1] == 0:
        return np.eye(m)
    q, _ = np.linalg.qr(np.concatenate([U, np.eye(m)], axis=1))
    return q[:, U.shape[1]:m]


def candidate_starts(parent, mask, n_random=0, random_state=None, jitter=0.1):
    """Warm starts for a structure obtained from ``parent`` by deleting loadings (requirement 4b).

    The rotated start (:func:`rotated_start`, when the supports are nested),
    the zeroed start (the parent's optimum with the removed loadings set to 0)
    and ``n_random`` random perturbations of the first (loadings plus
    ``jitter`` times N(0, item variance), unique variances times U(0.5, 1.5)),
    drawn from ``random_state`` (deterministic for a seed). Pass the list as
    one member's entry of ``starts`` to :func:`fit_specs`, which keeps the best.
    """
    mask = np.asarray(mask, dtype=bool)
    zeroed = parent.copy()
    zeroed.Lambda = np.where(mask, zeroed.Lambda, 0.0)
    rotated = rotated_start(parent, mask)
    starts = [zeroed] if rotated is None else [rotated, zeroed]
    rng = np.random.default_rng(random_state)
    sd = np.sqrt(np.maximum(parent.psi + np.sum((parent.Lambda @ np.linalg.cholesky(parent.latent_covariance()))**2, axis=1), 1e-12))
    for _ in range(n_random):
        base = starts[0].copy()
        base.Lambda = np.where(mask, base.Lambda + jitter * sd[:, None] * rng.standard_normal(mask.shape), 0.0)
        base.psi = base.psi * rng.uniform(0.5, 1.5, size=base.psi.shape)
        starts.append(base)
    return starts


# ------------------------------------------------------------------ start values
def _cluster_start(loadings, S, rng=None, jitter=0.0):
    """Lambda from each latent's children's first principal component; B = 0.

    The unique variances start at half the item variance. A random rotation of
    the common-factor space is mixed in for restarts (``jitter`` > 0).
    """
    p, m = loadings.shape
    psi = 0.5 * np.diag(S).copy()
    Lambda = np.zeros((p, m))
    reduced = S - np.diag(psi)
    eigval, eigvec = np.linalg.eigh(reduced)
    order = np.argsort(eigval)[::-1][:m]
    pca = eigvec[:, order] * np.sqrt(np.maximum(eigval[order], 1e-3))
    for k in range(m):
        children = np.flatnonzero(loadings[:, k])
        if children.size == 0:
            continue
        block = reduced[np.ix_(children, children)]
        w, v = np.linalg.eigh(block)
        vec = v[:, -1] * np.sqrt(max(w[-1], 1e-3))
        Lambda[children, k] = vec if vec.sum() >= 0 else -vec
    # Where children overlap heavily (LGES's initial state), columns coincide; fall back to PCA there.
    overlap = loadings.T.astype(float) @ loadings.astype(float)
    if m > 1 and (overlap - np.diag(np.diag(overlap))).max() > 0.5 * overlap.diagonal().min():
        Lambda = np.where(loadings, pca, 0.0)
    if rng is not None and jitter > 0:
        Q, _ = np.linalg.qr(rng.standard_normal((m, m)))
        Lambda = np.where(loadings, Lambda @ Q + jitter * rng.standard_normal((p, m)), 0.0)
        psi = psi * rng.uniform(0.5, 1.5, size=p)
    return Params(Lambda, np.zeros((m, m)), psi)


def _efa_loadings(psi, S, m):
    """Loadings maximising the likelihood for fixed unique variances (Joreskog 1967)."""
    scale = 1.0 / np.sqrt(psi)
    w, v = np.linalg.eigh(S * np.outer(scale, scale))
    w, v = w[::-1], v[:, ::-1]
    load = v[:, :m] * np.sqrt(np.maximum(w[:m] - 1.0, 0.0))
    return load / scale[:, None], w


def efa_ml(S, m, psi_start=None, floor=None):
    """Unrestricted m-factor ML factor analysis by profiling over Psi (as R's factanal).

    LGES's initial state (Definition 3: floor(p/2) latents, complete latent graph,
    every latent -> every item) is exactly this model, so its optimum starts the
    search. For fixed Psi the optimal loadings come from the eigenvectors of
    Psi^-1/2 S Psi^-1/2; the profile discrepancy
    ``sum_{j>m} (theta_j - log theta_j - 1) / 2`` is minimised over Psi with
    L-BFGS-B and its analytic gradient.

    Returns
    -------
    Params
        Orthogonal-factor solution (B = 0, so Phi = I).
    """
    from scipy.optimize import minimize

    S = np.asarray(S, dtype=float)
    p = S.shape[0]
    d = np.diag(S)
    floor = PSI_FLOOR * d if floor is None else floor
    if psi_start is None:
        psi_start = (1 - 0.5 * m / p) / np.diag(np.linalg.inv(S))

    def profile(psi):
        load, w = _efa_loadings(psi, S, m)
        rest = w[m:]
        value = 0.5 * np.sum(rest - np.log(rest) - 1.0)
        Sigma_diag = np.sum(load**2, axis=1) + psi
        grad = 0.5 * (Sigma_diag - d) / psi**2
        return value, grad

    res = minimize(profile, np.clip(psi_start, floor, d), jac=True, method="L-BFGS-B",
                   bounds=list(zip(floor, d)), options={"maxiter": 1000, "ftol": 1e-15, "gtol": 1e-10})
    load, _ = _efa_loadings(res.x, S, m)
    return Params(load, np.zeros((m, m)), res.x.copy())


def params_from_phi(Lambda, Phi, psi):
    """(Lambda, B, psi) with Lambda Phi Lambda' unchanged and unit disturbance variances.

    Phi = L D L' (L unit lower triangular): then Lambda Phi Lambda' =
    (Lambda D^1/2) T T' (Lambda D^1/2)' with T = D^-1/2 L D^1/2, which keeps
    the support of both Lambda and T (the latent order is the matrix order).
    """
    C = np.linalg.cholesky(Phi)
    d = np.diag(C).copy()
    L = C / d  # unit lower triangular: Phi = L diag(d^2) L'
    T = (L * d) / d[:, None]  # D^-1/2 L D^1/2 with D = diag(d^2)
    B = np.eye(len(d)) - np.linalg.inv(T)
    B[np.triu_indices(len(d))] = 0.0
    return Params(Lambda * d, B, psi.copy())


def dag_start(params, parents):
    """Warm start for a new latent DAG: regress each latent on its new parents in Phi.

    The parent state's latent covariance Phi is projected onto the DAG
    ``parents`` (``[i, j]``: j -> i, latents in topological matrix order):
    B_i = Phi_{i,pa} Phi_{pa,pa}^-1, omega_i the residual variance; omega is then
    absorbed into Lambda's columns so that disturbance variances are 1.
    """
    Phi = params.latent_covariance()
    m = Phi.shape[0]
    B = np.zeros((m, m))
    omega = np.empty(m)
    for i in range(m):
        pa = np.flatnonzero(parents[i])
        if pa.size:
            B[i, pa] = np.linalg.solve(Phi[np.ix_(pa, pa)], Phi[pa, i])
        omega[i] = max(Phi[i, i] - B[i, pa] @ Phi[pa, i], 1e-6 * Phi[i, i])
    # Lambda (I-B)^-1 Omega (I-B)^-T Lambda' = (Lambda D) T' T'' (Lambda D)' with D = Omega^1/2
    dvec = np.sqrt(omega)
    return Params(params.Lambda * dvec, (B * dvec[None, :]) / dvec[:, None], params.psi.copy())


_BLAS_CONTROLLER = None


def _one_blas_thread():
    """Limit BLAS to one thread (matrices here are at most ~150 x 150, where threads only cost).

    One threadpoolctl controller is kept for the process: building one scans the
    loaded libraries (about 1-10 ms), which would dominate a one-candidate fit.
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        import scipy.linalg  # noqa: F401  (load scipy's BLAS before the controller lists libraries)
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


# ------------------------------------------------------------------- public API
def fit_specs(loadings, parents, S, starts, max_iter=500, f_accept=None, *, f_lower=None, gtol=1e-8):
    """Fit a batch of structures of one shape at once (Phase 1 candidates differ only by masks).

    Two solvers, chosen per member:

    * Factor models (a complete latent DAG and nested item supports, see
      :func:`_is_factor_model`; LGES's initial state and every Phase-1
      candidate taken from it): Sigma = M M' + Psi with the rotation fixed,
      exact-Hessian Newton steps with Levenberg-Marquardt damping, stopped on
      the gradient (:func:`_newton_factor_batch`). The returned Params have
      Lambda = M and B = 0, which is a point of the structure's own model.
    * Everything else (sparse latent DAGs of Phase 2): Levenberg-Marquardt
      Fisher scoring in (Lambda, B, psi) (:func:`_lm_batch`).

    A member's result never depends on the other members of the batch.

    Parameters
    ----------
    loadings : ndarray of bool, shape (K, p, m)
    parents : ndarray of bool, shape (K, m, m) or (m, m)
        Strictly lower triangular latent parent masks (``[i, j]``: j -> i).
    S : ndarray, shape (p, p)
        Sample covariance (divisor N).
    starts : list of Params, or list of sequences of Params, length K
        Start values of each member (e.g. :func:`candidate_starts` of the
        parent state's optimum). With several, each is fitted and the lowest f
        is kept (restarts against local optima, REFERENCE.md section 8).
    f_accept : float or ndarray (K,), optional
        Stop a member as soon as its f reaches this value, and skip its
        remaining starts (sound early acceptance: f after any iteration bounds
        the optimum from above).
    f_lower : float or ndarray (K,), optional
        A lower bound of each member's optimum (e.g. its parent state's f, as a
        deletion can only raise f): once a start ends within 1e-9 of it, the
        member's remaining starts are skipped.
    gtol : float
        Factor path: converged when every free |df/dtheta_a| times the
        parameter's scale (item sd for loadings, item variance for psi) is below it.

    Returns
    -------
    f : ndarray (K,), params : list of Params, converged : ndarray (K,), n_iter : ndarray (K,)
        ``converged`` and ``params`` are those of the best start; ``n_iter``
        counts the iterations of all the member's starts that ran.
    """
    loadings = np.asarray(loadings, dtype=bool)
    K, p, m = loadings.shape
    parents = np.broadcast_to(np.asarray(parents, dtype=bool), (K, m, m))
    S = np.asarray(S, dtype=float)
    floor = PSI_FLOOR * np.diag(S)
    if f_accept is not None:
        f_accept = np.broadcast_to(np.asarray(f_accept, dtype=float), (K,))
    bound = None if f_lower is None else np.broadcast_to(np.asarray(f_lower, dtype=float), (K,))
    start_lists = [list(s) if isinstance(s, (list, tuple)) else [s] for s in starts]
    f = np.full(K, np.inf)
    converged = np.zeros(K, dtype=bool)
    n_iter = np.zeros(K, dtype=int)
    params = [None] * K
    factor = np.array([_is_factor_model(loadings[k], parents[k]) for k in range(K)], dtype=bool)
    with _one_blas_thread():
        for stage in range(max(len(s) for s in start_lists)):
            todo = [k for k in range(K) if len(start_lists[k]) > stage and not _settled(k, f, params, bound, f_accept)]
            if not todo:
                break
            out = _fit_stage(todo, factor, loadings, parents, S, [start_lists[k][stage] for k in todo],
                             floor, max_iter, None if f_accept is None else f_accept[todo], gtol)
            for i, k in enumerate(todo):
                f_k, params_k, conv_k, iter_k = out[0][i], out[1][i], out[2][i], out[3][i]
                n_iter[k] += iter_k
                if params[k] is None or f_k < f[k]:
                    f[k], params[k], converged[k] = f_k, params_k, conv_k
    return f, params, converged, n_iter


def _settled(k, f, params, f_lower, f_accept):
    """Whether member k's remaining starts cannot change its outcome.

    Either a start ended within 1e-9 of the lower bound (no start can go
    lower), or one reached ``f_accept``: the acceptance is already proven,
    which is all a caller passing ``f_accept`` asks (sound early acceptance).
    """
    if params[k] is None:
        return False
    if f_lower is not None and f[k] <= f_lower[k] + 1e-9:
        return True
    return f_accept is not None and f[k] <= f_accept[k]


def _fit_stage(members, factor, loadings, parents, S, starts, floor, max_iter, f_accept, gtol):
    """One start per member: the factor path for factor models, grouped LM Fisher scoring otherwise."""
    n = len(members)
    f = np.empty(n)
    converged = np.empty(n, dtype=bool)
    n_iter = np.empty(n, dtype=int)
    params = [None] * n
    members = np.asarray(members)
    on_factor = factor[members]
    fi = np.flatnonzero(on_factor)
    if fi.size:
        masks = loadings[members[fi]]
        M0 = np.stack([_factor_start(starts[i], masks[j]) for j, i in enumerate(fi)])
        psi0 = np.stack([starts[i].psi for i in fi])
        M, psi, f_fac, conv, its, _ = _newton_factor_batch(
            masks, M0, psi0, S, floor, max_iter=max_iter, gtol=gtol,
            f_accept=None if f_accept is None else f_accept[fi])
        m = masks.shape[2]
        for j, i in enumerate(fi):
            params[i] = Params(M[j].copy(), np.zeros((m, m)), psi[j].copy())
        f[fi], converged[fi], n_iter[fi] = f_fac, conv, its
    gi = np.flatnonzero(~on_factor)
    if gi.size:
        sub = _fit_groups_general(loadings[members[gi]], parents[members[gi]], S, [starts[i] for i in gi],
                                  floor, max_iter, None if f_accept is None else f_accept[gi])
        f[gi], converged[gi], n_iter[gi] = sub[0], sub[2], sub[3]
        for j, i in enumerate(gi):
            params[i] = sub[1][j]
    return f, params, converged, n_iter


def _factor_start(start, mask):
    """M with M M' = Lambda Phi Lambda' of a start, on ``mask`` (the start's removed loadings zeroed).

    Latents are ordered so that the nested supports are prefixes, and M =
    Lambda chol(Phi) in that order keeps every row on its support.
    """
    Lambda = np.where(mask, start.Lambda, 0.0)
    Phi = start.latent_covariance()
    if np.array_equal(Phi, np.eye(Phi.shape[0])):
        return Lambda
    order = []
    for support in _nested_supports(mask) or ():
        order += [c for c in support if c not in order]
    order += [c for c in range(mask.shape[1]) if c not in order]
    C = np.linalg.cholesky(Phi[np.ix_(order, order)])
    M = np.empty_like(Lambda)
    M[:, order] = Lambda[:, order] @ C
    return np.where(mask, M, 0.0)


def _fit_groups_general(loadings, parents, S, starts, floor, max_iter, f_accept):
    """LM Fisher scoring for members sharing a loading mask, on that mask's compact layout."""
    K, p, m = loadings.shape
    f = np.empty(K)
    converged = np.empty(K, dtype=bool)
    n_iter = np.empty(K, dtype=int)
    params = [None] * K
    keys = [loadings[k].tobytes() for k in range(K)]
    for key in dict.fromkeys(keys):
        members = np.array([k for k in range(K) if keys[k] == key])
        layout = _Layout(p, m, support=loadings[members[0]])
        active = layout.active(loadings[members], parents[members])
        theta = layout.pack(
            np.stack([starts[k].Lambda for k in members]), np.stack([starts[k].B for k in members]),
            np.stack([starts[k].psi for k in members]),
        )
        out = _lm_batch(layout, theta, active, S, floor, max_iter=max_iter,
                        f_accept=None if f_accept is None else f_accept[members])
        Lambda, B, psi = layout.unpack(out.theta)
        for i, k in enumerate(members):
            params[k] = Params(Lambda[i].copy(), B[i].copy(), psi[i].copy())
        f[members], converged[members], n_iter[members] = out.f, out.converged, out.n_iter
    return f, params, converged, n_iter


def score_spec(spec, S, N, start=None, n_restarts=4, random_state=None):
    """Maximum likelihood of one :class:`ScoreSpec` (see :func:`score_ML`)."""
    S = np.asarray(S, dtype=float)
    rng = np.random.default_rng(random_state)
    starts = [start] if start is not None else []
    starts.append(_cluster_start(spec.loadings, S))
    starts += [_cluster_start(spec.loadings, S, rng, jitter=0.3) for _ in range(n_restarts)]
    K = len(starts)
    f, params, converged, n_iter = fit_specs(
        np.broadcast_to(spec.loadings, (K,) + spec.loadings.shape),
        spec.parents, S, starts,
    )
    best = int(np.nanargmin(np.where(np.isfinite(f), f, np.nan)))
    return _result(f[best], params[best], bool(converged[best]), int(n_iter[best]), S, N)


def _result(f, params, converged, n_iter, S, N):
    floor = PSI_FLOOR * np.diag(S)
    heywood = tuple(int(i) for i in np.flatnonzero(params.psi <= floor * (1 + 1e-6)))
    if not converged:
        warnings.warn("score_ML did not converge; the score may be below the optimum.",
                      ConvergenceWarning, stacklevel=3)
    return ScoreResult(float(f), float(-N * f), params, converged, n_iter, heywood)


def score_ML(structure, S, N, start=None, n_restarts=4, random_state=None):
    """The maximum log-likelihood of a structure (LGES paper, equations 2-3).

    Parameters
    ----------
    structure : latentsem.model.Structure
        A generalized N factor model (observed variables are leaves); undirected
        latent edges are resolved to a consistent extension, which has the same
        score as every member of its equivalence class.
    S : array-like, shape (p, p)
        Sample covariance with divisor N, rows in ``structure.observed`` order.
    N : int
        Sample size.
    start : Params, optional
        A warm start (e.g. a parent structure's optimum with deleted edges set to 0).
    n_restarts : int
        Extra random starts used to escape local optima; the best is returned.
    random_state : int or Generator, optional
        Seed of the restarts; the result is deterministic for a given seed.

    Returns
    -------
    ScoreResult
        ``log_likelihood`` is the paper's L = -(N/2)(tr(Sigma^-1 S) + log det Sigma);
        higher is better.
    """
    spec = ScoreSpec.from_structure(structure)
    S = np.asarray(S, dtype=float)
    if S.shape != (spec.p, spec.p):
        raise StructureError(
            f"The covariance is {S.shape[0]}x{S.shape[1]} but the structure has {spec.p} observed variables; pass S in structure.observed order."
        )
    return score_spec(spec, S, N, start=start, n_restarts=n_restarts, random_state=random_state)


def saturated_f(S):
    """f at Sigma = S, the best any structure can reach: (log det S + p) / 2."""
    sign, logdet = np.linalg.slogdet(S)
    return 0.5 * (logdet + S.shape[0])
