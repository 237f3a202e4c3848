"""Compiled Levenberg-Marquardt Fisher scoring for general SEMs, one member at a time (numba).

The score engine's general path (:func:`latentsem.score.fit_specs` on sparse
latent DAGs, Phase 2 of LGES) minimises

    f(theta) = (log det Sigma + tr(Sigma^-1 S)) / 2,   Sigma = Lambda T T' Lambda' + Psi,   T = (I - B)^-1,

over theta = (free loadings, free latent coefficients, unique variances). Its
candidates are small (p ~ 20 items, m ~ 6 latents) and differ in their loading
masks, so numpy's per-call overhead dominated a batched implementation that
mostly ran one member at a time (``reports/benchmarks/lges_changes.md``
section 11). These kernels run each member's whole fit compiled.

Derivatives (rank-2 form): dSigma/dtheta_a = c_a (u_a v_a' + v_a u_a') with
u_a and v_a columns of Z = [I_p, Lambda T, Lambda Phi] (Phi = T T'):

* Lambda[i, k]: u = e_i, v = (Lambda Phi)[:, k], c = 1;
* B[i, j] (dT = T E_ij T): u = (Lambda T)[:, i], v = (Lambda Phi)[:, j], c = 1;
* psi[i]: u = v = e_i, c = 1/2.

With P = Sigma^-1 and G = P (Sigma - S) P, the gradient is
g_a = c_a (Z' G Z)[u_a, v_a] and the Fisher information is
F_ab = c_a c_b [(Z'PZ)[u_a, u_b] (Z'PZ)[v_a, v_b] + (Z'PZ)[u_a, v_b] (Z'PZ)[v_a, u_b]]
= tr(P dSigma_a P dSigma_b) / 2, read off two (p + 2m)-square matrices.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, fastmath={"reassoc", "contract"})
def _mm(A, B):
    """The matrix product AB by loops: at these sizes (at most ~150) as fast as a BLAS call, and
    numba compiles it in a fraction of the time its BLAS binding takes."""
    n, k = A.shape
    m = B.shape[1]
    C = np.zeros((n, m))
    for i in range(n):
        for t in range(k):
            a = A[i, t]
            if a != 0.0:
                for j in range(m):
                    C[i, j] += a * B[t, j]
    return C


@njit(cache=True, fastmath={"reassoc", "contract"})
def _cholesky(A):
    """Lower Cholesky factor of A and whether A is positive definite (dot-product form: the
    inner sums run over contiguous rows, and reassociation lets them vectorize)."""
    n = A.shape[0]
    L = np.zeros_like(A)
    for j in range(n):
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not s > 0.0:  # also catches NaN
            return L, False
        L[j, j] = np.sqrt(s)
        for i in range(j + 1, n):
            t = A[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / L[j, j]
    return L, True


@njit(cache=True)
def _cholesky_solve(L, b):
    """x with L L' x = b."""
    n = b.size
    y = np.empty(n)
    for i in range(n):
        t = b[i]
        for k in range(i):
            t -= L[i, k] * y[k]
        y[i] = t / L[i, i]
    x = np.empty(n)
    for i in range(n - 1, -1, -1):
        t = y[i]
        for k in range(i + 1, n):
            t -= L[k, i] * x[k]
        x[i] = t / L[i, i]
    return x


@njit(cache=True)
def _lower_inverse(L):
    """L^-1 for lower triangular L (forward substitution on the identity)."""
    n = L.shape[0]
    X = np.zeros_like(L)
    for c in range(n):
        X[c, c] = 1.0 / L[c, c]
        for i in range(c + 1, n):
            t = 0.0
            for k in range(c, i):
                t -= L[i, k] * X[k, c]
            X[i, c] = t / L[i, i]
    return X


@njit(cache=True)
def unpack(theta, p, m, lam_rows, lam_cols, b_rows, b_cols):
    """Lambda (p, m), B (m, m), psi (p,) of one parameter vector."""
    n_lambda, n_b = lam_rows.size, b_rows.size
    Lambda = np.zeros((p, m))
    for a in range(n_lambda):
        Lambda[lam_rows[a], lam_cols[a]] = theta[a]
    B = np.zeros((m, m))
    for a in range(n_b):
        B[b_rows[a], b_cols[a]] = theta[n_lambda + a]
    psi = theta[n_lambda + n_b:].copy()
    return Lambda, B, psi


@njit(cache=True)
def state(theta, S, m, lam_rows, lam_cols, b_rows, b_cols):
    """f, Sigma, P = Sigma^-1, Lambda T and T at theta; f = inf where Sigma is not finite and PD.

    T = (I - B)^-1 is the finite series I + B + ... + B^(m-1) (B is strictly
    lower triangular, hence nilpotent): exact and free of pivoting.
    """
    p = S.shape[0]
    Lambda, B, psi = unpack(theta, p, m, lam_rows, lam_cols, b_rows, b_cols)
    T = np.zeros((m, m))
    for i in range(m):
        T[i, i] = 1.0
    for _ in range(m - 1):
        T = _mm(B, T)
        for i in range(m):
            T[i, i] += 1.0
    LT = _mm(Lambda, T)
    Sigma = _mm(LT, LT.T.copy())
    ok = True
    for a in range(theta.size):
        ok = ok and np.isfinite(theta[a])
    for i in range(p):
        Sigma[i, i] += psi[i]
        for j in range(p):
            ok = ok and np.isfinite(Sigma[i, j])
    L, pd = _cholesky(Sigma) if ok else (Sigma, False)
    if not pd:
        return np.inf, Sigma, Sigma, LT, T      # P unused: f = inf is never accepted
    Linv = _lower_inverse(L)
    P = _mm(Linv.T.copy(), Linv)
    logdet = 0.0
    trace = 0.0
    for i in range(p):
        logdet += 2.0 * np.log(L[i, i])
        for j in range(p):
            trace += P[i, j] * S[j, i]
    return 0.5 * (logdet + trace), Sigma, P, LT, T


@njit(cache=True)
def _z_products(M, W):
    """Z' M Z for symmetric M (p, p) and Z = [I, W]."""
    p, w = W.shape
    MW = _mm(M, W)
    WMW = _mm(W.T.copy(), MW)
    Q = np.empty((p + w, p + w))
    for i in range(p):
        for j in range(p):
            Q[i, j] = M[i, j]
        for j in range(w):
            Q[i, p + j] = MW[i, j]
            Q[p + j, i] = MW[i, j]
    for i in range(w):
        for j in range(w):
            Q[p + i, p + j] = WMW[i, j]
    return Q


@njit(cache=True)
def gradient_fisher(Sigma, P, LT, T, S, iu, iv, c):
    """Gradient g (q,) and Fisher information F (q, q) of f (see the module docstring)."""
    p, m = LT.shape
    LPhi = _mm(LT, T.T.copy())
    W = np.empty((p, 2 * m))                                   # [Lambda T, Lambda Phi]
    D = np.empty((p, p))                                       # Sigma - S
    for i in range(p):
        for k in range(m):
            W[i, k] = LT[i, k]
            W[i, m + k] = LPhi[i, k]
        for j in range(p):
            D[i, j] = Sigma[i, j] - S[i, j]
    G = _mm(_mm(P, D), P)
    R = _z_products(G, W)
    Q = _z_products(P, W)
    q = iu.size
    g = np.empty(q)
    F = np.empty((q, q))
    for a in range(q):
        g[a] = c[a] * R[iu[a], iv[a]]
        for b in range(a + 1):
            v = c[a] * c[b] * (Q[iu[a], iu[b]] * Q[iv[a], iv[b]] + Q[iu[a], iv[b]] * Q[iv[a], iu[b]])
            F[a, b] = v
            F[b, a] = v
    return g, F


@njit(cache=True)
def _solve(A, b):
    """x with A x = b by Gaussian elimination with partial pivoting; NaN when A is singular."""
    n = A.shape[0]
    M = A.copy()
    x = b.copy()
    for k in range(n):
        piv = k
        big = abs(M[k, k])
        for i in range(k + 1, n):
            if abs(M[i, k]) > big:
                big, piv = abs(M[i, k]), i
        if big == 0.0 or not np.isfinite(big):
            for i in range(n):
                x[i] = np.nan
            return x
        if piv != k:
            for j in range(n):
                M[k, j], M[piv, j] = M[piv, j], M[k, j]
            x[k], x[piv] = x[piv], x[k]
        for i in range(k + 1, n):
            r = M[i, k] / M[k, k]
            if r != 0.0:
                for j in range(k, n):
                    M[i, j] -= r * M[k, j]
                x[i] -= r * x[k]
    for k in range(n - 1, -1, -1):
        t = x[k]
        for j in range(k + 1, n):
            t -= M[k, j] * x[j]
        x[k] = t / M[k, k]
    return x


@njit(cache=True)
def lm_member(theta, active, S, floor, m, lam_rows, lam_cols, b_rows, b_cols, iu, iv, c,
              max_iter, stall_tol, stall_window, gtol, f_accept):
    """Projected Levenberg-Marquardt Fisher scoring of one member, in place on ``theta``.

    Returns (f, converged, n_iter). The rules are those documented on
    :func:`latentsem.score._lm_batch`: damping mu starts at 1e-3, divides by 3
    after an accepted step and multiplies by 8 after a rejected one; unique
    variances are projected onto ``psi >= floor`` and those at the floor with
    the gradient pushing down are frozen for the step; a member stops on the
    gradient (``gtol``), on reaching ``f_accept``, when f fell by less than
    ``stall_tol`` over ``stall_window`` iterations, when mu exceeds 1e10, or
    after ``max_iter`` iterations.
    """
    q = theta.size
    n_free = lam_rows.size + b_rows.size
    for a in range(q):
        if not active[a]:
            theta[a] = 0.0
        if a >= n_free and theta[a] < floor[a - n_free]:
            theta[a] = floor[a - n_free]
    f, Sigma, P, LT, T = state(theta, S, m, lam_rows, lam_cols, b_rows, b_cols)
    if not (np.isfinite(f) and f > f_accept):
        return f, False, 0
    history = np.empty(stall_window)
    for w in range(stall_window):
        history[w] = f
    mu = 1e-3
    n_iter = 0
    for _ in range(max_iter):
        g, F = gradient_fisher(Sigma, P, LT, T, S, iu, iv, c)
        free = active.copy()
        gmax = 0.0
        for a in range(q):
            if a >= n_free and theta[a] <= floor[a - n_free] * (1 + 1e-12) and g[a] > 0:
                free[a] = False
            if not free[a]:
                g[a] = 0.0
            gmax = max(gmax, abs(g[a]))
        if gmax < gtol:
            return f, True, n_iter
        # The damped system on the free parameters (frozen ones take no step).
        idx = np.empty(q, dtype=np.int64)
        nf = 0
        for a in range(q):
            if free[a]:
                idx[nf] = a
                nf += 1
        A = np.empty((nf, nf))
        rhs = np.empty(nf)
        for a in range(nf):
            rhs[a] = g[idx[a]]
            for b in range(nf):
                A[a, b] = F[idx[a], idx[b]]
            A[a, a] += mu * (A[a, a] + 1e-10)
        L, pd = _cholesky(A)
        sub = _cholesky_solve(L, rhs) if pd else _solve(A, rhs)
        trial = theta.copy()
        for a in range(nf):
            trial[idx[a]] -= sub[a]
        for a in range(n_free, q):
            trial[a] = max(trial[a], floor[a - n_free])
        f_new, Sigma_new, P_new, LT_new, T_new = state(trial, S, m, lam_rows, lam_cols, b_rows, b_cols)
        n_iter += 1
        better = f_new < f
        if better:
            for a in range(q):
                theta[a] = trial[a]
            f, Sigma, P, LT, T = f_new, Sigma_new, P_new, LT_new, T_new
            mu = max(mu / 3.0, 1e-12)
            if f <= f_accept:
                return f, True, n_iter
        for w in range(stall_window - 1):
            history[w] = history[w + 1]
        history[stall_window - 1] = f
        if history[0] - f < stall_tol and n_iter >= stall_window:
            return f, True, n_iter   # converged in f: the quantity LGES compares
        if not better:
            mu *= 8.0
            if mu > 1e10:           # no descent direction left at this precision
                return f, True, n_iter
    return f, False, n_iter


@njit(cache=True)
def lm_batch(theta, active, S, floor, m, lam_rows, lam_cols, b_rows, b_cols, iu, iv, c,
             max_iter, stall_tol, stall_window, gtol, f_accept):
    """:func:`lm_member` for each row of ``theta`` (K, q), in place; (f, converged, n_iter)."""
    K = theta.shape[0]
    f = np.empty(K)
    converged = np.zeros(K, dtype=np.bool_)
    n_iter = np.zeros(K, dtype=np.int64)
    for k in range(K):
        f[k], converged[k], n_iter[k] = lm_member(
            theta[k], active[k], S, floor, m, lam_rows, lam_cols, b_rows, b_cols, iu, iv, c,
            max_iter, stall_tol, stall_window, gtol, f_accept[k])
    return f, converged, n_iter
