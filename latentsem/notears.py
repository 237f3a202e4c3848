"""Linear NOTEARS: a DAG among fully observed variables by continuous optimization.

Zheng, Aragam, Ravikumar & Xing (2018), "DAGs with NO TEARS: Continuous
Optimization for Structure Learning" (NeurIPS), and the authors' public
``linear.py``. The problem (their eq. 5 with the smooth acyclicity of Theorem 1)

    min_W  F(W) = 1/(2n) ||X - X W||_F^2 + lambda1 ||W||_1   s.t.  h(W) = tr(exp(W o W)) - d = 0

is solved by the augmented Lagrangian (their Algorithm 1, eq. 13-14): for
fixed (rho, alpha) minimise

    L(W) = F(W) + rho/2 h(W)^2 + alpha h(W)

with L-BFGS-B on the doubled variables ``W = W+ - W-``, ``W+, W- >= 0``
(so the L1 term is the linear ``lambda1 * sum(W+ + W-)``; the diagonal is
bounded to 0). While the solution does not cut h to a quarter of its previous
value rho is multiplied by 10; then ``alpha += rho h``. Stop when h <= h_tol or
rho >= rho_max; finally entries with ``|w| < w_threshold`` are set to 0.

Same algorithm, start point and stopping rules as the authors' code; three changes
make it several times faster without changing the problem being solved:

1. The loss and its gradient use the centred covariance ``S = X^T X / n``:
   ``1/(2n) ||X - XW||^2 = 1/2 tr((I - W)^T S (I - W))`` with gradient
   ``-S (I - W)``, so an evaluation costs O(d^3) instead of O(n d^2).
2. Once rho >= 1e8 (:data:`PRECONDITION_FROM_RHO`), each subproblem is solved
   in diagonally rescaled variables ``w = s * v`` (Jacobi preconditioning of the
   penalty): ``s_ij = sqrt(S_ii / H_ij)`` where ``H_ij`` estimates the diagonal
   of the Hessian of L at the subproblem's starting point and ``S_ii`` is the
   loss's own curvature. The bounds ``[0, inf)`` and ``[0, 0]`` are invariant
   under positive scaling, so the subproblem and its minimisers are unchanged;
   but these late subproblems have curvatures spanning up to eight orders of
   magnitude, which plain L-BFGS-B crawls through with thousands of iterations
   each, and they take most of the authors' run time. The scaling is refreshed
   every 300 iterations (:data:`REFRESH_EVERY`).

3. scipy's L-BFGS-B routine and its expm kernels are called without scipy's
   per-call wrappers (:func:`_lbfgsb_direct`, :func:`_expm_generic`), which cost
   about as much as the objective itself at d = 20. Both reproduce scipy's
   public functions bit for bit, so the iterates are unchanged; both use
   private scipy routines, so on first use each is checked against the public
   function, and the public one is used if they differ.

Why only late: the problem is non-convex, and L-BFGS-B's path decides which
local optimum is reached. Preconditioning every subproblem (or restarting a
rejected subproblem from its own solution, ``restart_from_rejected``) made
about three times fewer evaluations but ended in a different, on average
worse, optimum on 3-4 of 10 test problems (d = 20 ER2 and d = 10 SF4, seeds
0-4). Switched on at rho = 1e8 the SHD matched the authors' loop on 8 of
those 10 (one better, one worse), as often as the covariance form alone does
(which also parts from the authors' path through floating-point order).
Measured figures: ``reports/benchmarks/notears.md``.

Convention: ``W[i, j] != 0`` means an edge i -> j (the model is X = X W + Z).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ._threads import single_threaded_blas
from ._validation import interval, options, validate_params
from .exceptions import ConvergenceWarning, DataError, LatentsemError
from .graph import has_directed_cycle

logger = logging.getLogger(__name__)

LOSSES = ("l2",)
_REDUCTION = 0.25      # accept a subproblem when h <= 0.25 h_previous (Algorithm 1, step 2)
_RHO_GROWTH = 10.0     # otherwise rho *= 10
PRECONDITION_FROM_RHO = 1e8   # rescale the L-BFGS-B variables from here on (module docstring, point 2)
REFRESH_EVERY = 300           # ... and recompute the scaling every 300 L-BFGS-B iterations
_MAX_EVALUATIONS = 15000      # scipy's default maxfun, kept per subproblem


# ------------------------------------------------------------------ pieces of the objective
def centred_covariance(X):
    """``S = Xc^T Xc / n`` of the column-centred data (divisor n, as the loss 1/(2n) ||.||^2 needs)."""
    X = np.asarray(X, dtype=float)
    Xc = X - X.mean(axis=0, keepdims=True)
    return Xc.T @ Xc / X.shape[0]


def least_squares_loss(W, S):
    """The least-squares score ``1/(2n) ||X - X W||_F^2`` and its gradient, from ``S = X^T X / n``.

    ``||X - XW||^2 / (2n) = tr((I - W)^T S (I - W)) / 2``; the gradient is ``-S (I - W)``
    (the authors' ``-X^T (X - XW) / n``).
    """
    M = S - S @ W                       # S (I - W)
    loss = 0.5 * float(np.vdot(M, np.eye(W.shape[0]) - W))
    return loss, -M


def acyclicity(W):
    """``h(W) = tr(exp(W o W)) - d`` (Theorem 1; zero exactly on DAGs) and its gradient ``exp(W o W)^T o 2W``."""
    from scipy.linalg import expm

    E = expm(W * W)
    return float(np.trace(E)) - W.shape[0], 2.0 * E.T * W


def _relative_curvature(W, S, rho, alpha):
    """Diagonal of the Hessian of L at ``W`` relative to the loss's curvature, one value per W[i, j] (>= 1).

    Loss: ``d2/dW_ij^2 = S_ii``. Penalty ``rho/2 h^2 + alpha h``: Gauss-Newton
    ``rho (dh/dW_ij)^2`` plus ``(rho h + alpha) d2h/dW_ij^2`` with
    ``d2h/dW_ij^2 = 2 E_ji + 4 W_ij^2 dE_ji/dA_ij`` and ``0 <= dE_ji/dA_ij <= E_ji^2``
    (A = W o W >= 0, E = exp(A)); the upper bound is used. Returns
    ``1 + penalty_ij / S_ii``.
    """
    from scipy.linalg import expm

    E_T = expm(W * W).T
    h = float(np.trace(E_T)) - W.shape[0]
    grad_h = 2.0 * E_T * W
    penalty = (rho * h + alpha) * (2.0 * E_T + grad_h ** 2) + rho * grad_h ** 2
    np.fill_diagonal(penalty, 0.0)      # self-loops are fixed at 0 by their bounds
    return 1.0 + penalty / np.diag(S)[:, None]


@lru_cache(maxsize=8)
def _strictly_lower(d):
    return np.tri(d, k=-1, dtype=bool)


def _expm_generic(A, expm, pick_pade_structure, pade_UV_calc):
    """``scipy.linalg.expm(A)`` for a 2-D float64 array with scipy's own Pade kernels but without its
    per-call wrappers (half of expm's time at d = 20). Triangular and diagonal ``A`` (scipy treats
    them apart) go to ``expm``; every other input takes scipy's generic branch: Pade structure,
    Pade approximant, then ``s`` squarings."""
    below = _strictly_lower(A.shape[0])
    if not A[below].any() or not A.T[below].any():
        return expm(A)
    Am = np.empty((5,) + A.shape)
    Am[0] = A
    m, s = pick_pade_structure(Am)
    if m < 0 or pade_UV_calc(Am, m) != 0:
        return expm(A)              # scipy raises its own error for these
    E = Am[0]
    for _ in range(s):
        E = E @ E
    return E


_EXPM = []


def _expm_function():
    """:func:`_expm_generic` (its kernels bound once) when it reproduces scipy.linalg.expm bit for bit here
    (it calls scipy's private Pade kernels), else scipy.linalg.expm. Checked once, on matrices
    whose norms need 0 to 5 squarings, and a triangular one."""
    if not _EXPM:
        from functools import partial

        from scipy.linalg import expm

        rng = np.random.default_rng(0)
        tests = [scale * rng.uniform(0, 1, (6, 6)) ** 2 for scale in (0.01, 0.3, 1.0, 5.0, 20.0)]
        try:
            from scipy.linalg._matfuncs_expm import pade_UV_calc, pick_pade_structure

            fast = partial(_expm_generic, expm=expm, pick_pade_structure=pick_pade_structure,
                           pade_UV_calc=pade_UV_calc)
            same = all(np.array_equal(fast(A), expm(A)) for A in tests + [np.triu(tests[2])])
        except Exception:  # noqa: BLE001  (any failure of the private kernels: use the public function)
            same = False
        _EXPM.append(fast if same else expm)
    return _EXPM[0]


@dataclass(frozen=True)
class SubproblemRecord:
    """One L-BFGS-B solve of the augmented Lagrangian: its (rho, alpha), the h it reached, and whether it was kept."""

    rho: float
    alpha: float
    h: float
    objective: float
    n_evaluations: int
    accepted: bool
    message: str


class _AugmentedLagrangian:
    """``L(w)`` and its gradient on the doubled, rescaled variables ``w = scale * v``, ``W = w[:d^2] - w[d^2:]``."""

    def __init__(self, S, lambda1):
        self.S = S
        self.d = S.shape[0]
        self.lambda1 = float(lambda1)
        self.rho = 1.0
        self.alpha = 0.0
        self.scale = np.ones(2 * self.d * self.d)
        self._identity = np.eye(self.d)
        self._buffers = [np.empty((self.d, self.d)) for _ in range(4)]   # W, S (I - W), scratch, grad h part

    def weights(self, w):
        """The d x d matrix W = W+ - W- of the doubled vector ``w`` (unscaled)."""
        dd = self.d * self.d
        return (w[:dd] - w[dd:]).reshape(self.d, self.d)

    def __call__(self, v):
        # Every operation writes into a preallocated d x d buffer: same values, fewer allocations
        # (this runs some 10^4 times per fit). The returned gradient is a new array.
        expm = _expm_function()
        d, dd, S = self.d, self.d * self.d, self.S
        W, M, T, G = self._buffers
        w = v * self.scale
        np.subtract(w[:dd].reshape(d, d), w[dd:].reshape(d, d), out=W)
        np.matmul(S, W, out=T)
        np.subtract(S, T, out=M)                        # S (I - W); the loss gradient is -M
        np.subtract(self._identity, W, out=T)
        loss = 0.5 * np.vdot(M, T)
        np.multiply(W, W, out=T)
        E = expm(T)
        h = E.trace() - d
        np.multiply(E.T, W, out=G)                      # grad h / 2
        G *= 2.0 * (self.rho * h + self.alpha)
        G -= M
        G = G.reshape(dd)
        grad = np.empty(2 * dd)
        np.add(G, self.lambda1, out=grad[:dd])          # d/dW+ ; the L1 term is lambda1 * sum(w)
        np.subtract(self.lambda1, G, out=grad[dd:])     # d/dW-
        grad *= self.scale
        value = loss + h * (0.5 * self.rho * h + self.alpha) + self.lambda1 * w.sum()
        return value, grad


def notears_linear(X, lambda1=0.1, *, max_iter=100, h_tol=1e-8, rho_max=1e16, precondition=True,
                   restart_from_rejected=False):
    """Run the NOTEARS augmented Lagrangian on the data ``X`` (n x d) and return the unthresholded W.

    Parameters are those of :class:`NOTEARS` (not validated here);
    ``precondition=False`` turns speed-up 2 of the module docstring off and
    ``restart_from_rejected=True`` restarts a rejected subproblem from its own
    solution (faster, further from the authors' path), for comparisons.

    Returns
    -------
    W : numpy.ndarray, shape (d, d)
        The last accepted solution, before thresholding.
    h : float
        ``h(W)`` there.
    n_iter : int
        Number of dual (alpha) updates.
    history : list of SubproblemRecord
    """
    import scipy.linalg  # noqa: F401  (load scipy's BLAS before limiting its threads)
    import scipy.optimize  # noqa: F401

    with single_threaded_blas():
        return _augmented_lagrangian(centred_covariance(X), lambda1, max_iter, h_tol, rho_max, precondition,
                                     restart_from_rejected)


# ------------------------------------------------------------------ L-BFGS-B, driven directly
_LBFGSB_DEFAULTS = {"m": 10, "ftol": 2.2204460492503131e-09, "gtol": 1e-5, "maxls": 20}   # scipy's defaults


@dataclass(frozen=True)
class _LbfgsbResult:
    """The fields of scipy's OptimizeResult that the loop reads."""

    x: np.ndarray
    fun: float
    nfev: int
    status: int
    message: str


def _lbfgsb_direct(fun, x0, lower, upper, maxiter):
    """scipy's L-BFGS-B routine (``scipy.optimize._lbfgsb.setulb``) driven by the loop of scipy's
    ``_minimize_lbfgsb``, minus its per-evaluation wrapper.

    Same routine, defaults and call sequence, so the iterates are the same
    bit for bit (checked by :func:`_lbfgsb_solver` before first use); scipy's
    ScalarFunction bookkeeping cost about as much as the objective itself at
    d = 20 (a third of NOTEARS's run time). ``lower`` must be finite.
    """
    from scipy.optimize import _lbfgsb
    from scipy.optimize._lbfgsb_py import status_messages, task_messages

    m, maxls = _LBFGSB_DEFAULTS["m"], _LBFGSB_DEFAULTS["maxls"]
    factr = _LBFGSB_DEFAULTS["ftol"] / np.finfo(float).eps
    n = x0.size
    nbd = np.where(np.isinf(upper), 1, 2).astype(np.int32)      # 1: lower bound only, 2: both
    low, up = np.asarray(lower, dtype=np.float64), np.where(np.isinf(upper), 0.0, upper).astype(np.float64)
    x = np.clip(np.asarray(x0, dtype=np.float64), lower, upper)
    f, g = np.array(0.0), np.zeros(n)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task, ln_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
    lsave, isave, dsave = np.zeros(4, dtype=np.int32), np.zeros(44, dtype=np.int32), np.zeros(29)
    last_x, nfev, n_iter = None, 0, 0
    while True:
        _lbfgsb.setulb(m, x, low, up, nbd, f, g, factr, _LBFGSB_DEFAULTS["gtol"], wa, iwa, task, lsave, isave,
                       dsave, maxls, ln_task)
        if task[0] == 3:                        # f and g wanted at x
            if last_x is None or not (x == last_x).all():     # scipy's ScalarFunction re-evaluates only a new x
                last_x = x.copy()
                value, gradient = fun(last_x)
                f, g_last = float(value), np.array(gradient, dtype=np.float64)
                nfev += 1
            g = g_last.copy()
        elif task[0] == 1:                      # a new iterate
            n_iter += 1
            if n_iter >= maxiter:
                task[0], task[1] = 5, 504
            elif nfev > _MAX_EVALUATIONS:
                task[0], task[1] = 5, 502
        else:
            break
    status = 0 if task[0] == 4 else 1 if (nfev > _MAX_EVALUATIONS or n_iter >= maxiter) else 2
    return _LbfgsbResult(x, float(f), nfev, status, status_messages[task[0]] + ": " + task_messages[task[1]])


def _lbfgsb_scipy(fun, x0, lower, upper, maxiter):
    """The same solve through ``scipy.optimize.minimize`` (the public API)."""
    from scipy.optimize import Bounds, minimize

    result = minimize(fun, x0, method="L-BFGS-B", jac=True, bounds=Bounds(lower, upper),
                      options={"maxiter": maxiter, "maxfun": _MAX_EVALUATIONS})
    return _LbfgsbResult(result.x, float(result.fun), int(result.nfev), int(result.status), str(result.message))


_SOLVER = []


def _lbfgsb_solver():
    """:func:`_lbfgsb_direct` when it reproduces ``scipy.optimize.minimize`` exactly on a small NOTEARS
    subproblem with this scipy (it relies on scipy's private ``setulb``), else :func:`_lbfgsb_scipy`."""
    if not _SOLVER:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(50, 4)) @ np.triu(rng.uniform(0.5, 1.5, (4, 4)))
        L = _AugmentedLagrangian(centred_covariance(X), 0.1)
        L.rho, L.alpha = 10.0, 0.5
        lower, upper = _bounds(4)
        theirs = _lbfgsb_scipy(L, np.zeros(32), lower, upper, 15000)
        try:
            ours = _lbfgsb_direct(L, np.zeros(32), lower, upper, 15000)
            same = (np.array_equal(ours.x, theirs.x) and ours.fun == theirs.fun and ours.nfev == theirs.nfev
                    and ours.status == theirs.status)
        except Exception:  # noqa: BLE001  (any failure of the private routine: use the public API)
            same = False
        _SOLVER.append(_lbfgsb_direct if same else _lbfgsb_scipy)
        logger.debug("L-BFGS-B driver: %s", _SOLVER[0].__name__)
    return _SOLVER[0]


def _bounds(d):
    """Bounds of the doubled variables: ``[0, inf)`` off the diagonal, ``[0, 0]`` on it (no self-loops)."""
    off_diagonal = np.where(np.eye(d, dtype=bool), 0.0, np.inf).ravel()
    return np.zeros(2 * d * d), np.concatenate([off_diagonal, off_diagonal])


def _solve_subproblem(L, w_start, bounds, S, solve, precondition):
    """One L-BFGS-B solve of L from ``w_start``; returns (w, last solver result, evaluations).

    In the late, preconditioned stage the diagonal scaling is recomputed every
    :data:`REFRESH_EVERY` iterations (a restart of L-BFGS-B at the current point
    with the new scaling): the curvature moves as W does, and at d = 50 the last
    subproblem took 10,896 evaluations with a fixed scaling against 1,128.
    """
    late = precondition and L.rho >= PRECONDITION_FROM_RHO
    refresh = bool(late and REFRESH_EVERY)
    maxiter = REFRESH_EVERY if refresh else 15000    # scipy's default maxiter otherwise
    n_evaluations = 0
    while True:
        if late:
            curvature = _relative_curvature(L.weights(w_start), S, L.rho, L.alpha)
            L.scale[:] = np.tile(1.0 / np.sqrt(curvature).ravel(), 2)
        else:
            L.scale[:] = 1.0
        solution = solve(L, w_start / L.scale, *bounds, maxiter)
        n_evaluations += solution.nfev
        w_start = solution.x * L.scale
        if not refresh or solution.status != 1 or n_evaluations >= _MAX_EVALUATIONS:
            return w_start, solution, n_evaluations


def _augmented_lagrangian(S, lambda1, max_iter, h_tol, rho_max, precondition, restart_from_rejected):
    """The loop of :func:`notears_linear` on the covariance ``S`` (Algorithm 1 of the paper)."""
    d = S.shape[0]
    L = _AugmentedLagrangian(S, lambda1)
    bounds, solve = _bounds(d), _lbfgsb_solver()
    w_est, h, history, n_iter = np.zeros(2 * d * d), np.inf, [], 0
    while n_iter < max_iter:
        n_iter += 1
        w_start, w_new, h_new = w_est, None, None
        while L.rho < rho_max:
            w_new, solution, n_evaluations = _solve_subproblem(L, w_start, bounds, S, solve, precondition)
            h_new, _ = acyclicity(L.weights(w_new))
            accepted = h_new <= _REDUCTION * h
            history.append(SubproblemRecord(L.rho, L.alpha, h_new, float(solution.fun), n_evaluations,
                                            bool(accepted), str(solution.message)))
            logger.debug("rho=%.0e alpha=%.3g h=%.3e nfev=%d", L.rho, L.alpha, h_new, n_evaluations)
            if accepted:
                break
            L.rho *= _RHO_GROWTH
            if restart_from_rejected:
                w_start = w_new
        if w_new is None:       # rho_max <= rho before any solve
            break
        w_est, h = w_new, h_new
        L.alpha += L.rho * h
        if h <= h_tol or L.rho >= rho_max:
            break
    return L.weights(w_est), float(h), n_iter, history


# ------------------------------------------------------------------ graph <-> text
def dag_to_lavaan(W, names):
    """lavaan syntax of the path model of a weighted DAG: one ``y ~ x1 + x2`` line per variable with parents.

    ``W[i, j] != 0`` means names[i] -> names[j]. Variables are visited in column
    order, parents listed in column order. Variables without parents appear only
    as predictors (lavaan then treats them as exogenous, ``fixed.x = TRUE``);
    isolated variables do not appear.
    """
    W = np.asarray(W)
    lines = []
    for j, target in enumerate(names):
        parents = [names[i] for i in np.flatnonzero(W[:, j])]
        if parents:
            lines.append(f"{target} ~ {' + '.join(parents)}")
    return "\n".join(lines) + ("\n" if lines else "")


def weights_to_graph_dict(W, names):
    """``{"nodes": names, "edges": [{"source", "target", "weight"}, ...]}`` for the nonzero entries of ``W``."""
    W = np.asarray(W, dtype=float)
    edges = [{"source": names[i], "target": names[j], "weight": float(W[i, j])} for i, j in zip(*np.nonzero(W))]
    return {"nodes": list(names), "edges": edges}


def graph_dict_to_weights(graph, names=None):
    """The weight matrix of a graph dict (see :func:`weights_to_graph_dict`), rows/columns in ``names`` order.

    ``names`` defaults to the dict's ``nodes``. An edge without ``weight`` counts
    as weight 1. Raises :class:`LatentsemError` for malformed dicts or edges naming
    unknown nodes.
    """
    if not isinstance(graph, dict) or not isinstance(graph.get("edges"), list):
        raise LatentsemError('A graph must be a JSON object with "nodes" and "edges" '
                             '([{"source": ..., "target": ..., "weight": ...}]).')
    names = list(graph.get("nodes", [])) if names is None else list(names)
    index = {name: k for k, name in enumerate(names)}
    W = np.zeros((len(names), len(names)))
    unknown = []
    for edge in graph["edges"]:
        if not isinstance(edge, dict) or "source" not in edge or "target" not in edge:
            raise LatentsemError(f'Every edge needs "source" and "target"; got {edge!r}.')
        source, target = str(edge["source"]), str(edge["target"])
        missing = [name for name in (source, target) if name not in index]
        if missing:
            unknown.extend(m for m in missing if m not in unknown)
            continue
        W[index[source], index[target]] = float(edge.get("weight", 1.0))
    if unknown:
        raise LatentsemError(f"The graph's edges name {unknown}, which are not among the variables {names}.")
    return W


# ------------------------------------------------------------------ estimator
_PARAMETER_CONSTRAINTS = {
    "lambda1": interval("float", 0, np.inf),
    "w_threshold": interval("float", 0, np.inf),
    "max_iter": interval("int", 1, np.inf),
    "h_tol": interval("float", 0, np.inf),
    "rho_max": interval("float", 1, np.inf, False),
    "loss": options(*LOSSES),
}


def _as_frame_values(X):
    """``(values, names)`` of a DataFrame, an ItemData (``.frame``) or a 2-D array, with data errors as DataError."""
    frame = getattr(X, "frame", X)
    if hasattr(frame, "columns") and hasattr(frame, "to_numpy"):
        names = [str(c) for c in frame.columns]
        non_numeric = [str(c) for c, t in zip(frame.columns, frame.dtypes) if t.kind not in "biuf"]
        if non_numeric:
            raise DataError(f"Items {non_numeric} are not numeric; drop them or recode them as numbers.")
        values = frame.to_numpy(dtype=float)
    else:
        values = np.asarray(X)
        if values.dtype.kind not in "biuf":
            raise DataError(f"X must be a numeric array or DataFrame; got dtype {values.dtype}.")
        values = values.astype(float)
        names = [f"X{k + 1}" for k in range(values.shape[1])] if values.ndim == 2 else []
    if values.ndim != 2 or values.shape[0] < 2 or values.shape[1] < 2:
        raise DataError(f"X must have at least 2 rows and 2 columns (rows = observations); got shape {values.shape}.")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"Items {duplicated} appear more than once; give each column a unique name.")
    bad = [names[k] for k in np.flatnonzero(~np.isfinite(values).all(axis=0))]
    if bad:
        raise DataError(f"Items {bad} have missing or infinite values; drop those rows first (NOTEARS needs complete data).")
    constant = [names[k] for k in np.flatnonzero(np.ptp(values, axis=0) == 0)]
    if constant:
        raise DataError(f"Items {constant} have zero variance; drop them from the data.")
    return values, names


class NOTEARS:
    """Linear NOTEARS (Zheng et al. 2018): a weighted DAG among observed variables.

    Parameters
    ----------
    lambda1 : float, default 0.1
        L1 penalty on the weights (higher: sparser graph).
    w_threshold : float, default 0.3
        Final weights with ``|w| < w_threshold`` are set to 0.
    max_iter : int, default 100
        Maximum number of dual ascent (alpha) updates.
    h_tol : float, default 1e-8
        Stop once ``h(W) <= h_tol``.
    rho_max : float, default 1e16
        Stop once the penalty ``rho >= rho_max``.
    loss : {"l2"}, default "l2"
        Least squares on centred data, ``1/(2n) ||X - XW||^2``.

    Attributes
    ----------
    W_ : numpy.ndarray, shape (d, d)
        Thresholded weights; ``W_[i, j] != 0`` means an edge i -> j.
    adjacency_ : numpy.ndarray of bool
        ``W_ != 0``.
    W_raw_ : numpy.ndarray
        Weights before thresholding.
    columns_ : list of str
        Variable names (DataFrame columns, or ``X1..Xd`` for arrays).
    h_ : float
        ``h(W_raw_)`` at the end.
    n_iter_ : int
        Dual ascent iterations used.
    history_ : list of SubproblemRecord
        Every L-BFGS-B subproblem (rho, alpha, h, accepted).

    Examples
    --------
    >>> from latentsem.simulate.dag import simulate_notears_problem
    >>> X, W_true = simulate_notears_problem(10, "ER", 2, n=1000, random_state=0)
    >>> model = NOTEARS().fit(X)
    >>> model.to_graph_dict()["edges"][0].keys()
    dict_keys(['source', 'target', 'weight'])
    """

    def __init__(self, lambda1=0.1, *, w_threshold=0.3, max_iter=100, h_tol=1e-8, rho_max=1e16, loss="l2"):
        self.lambda1 = lambda1
        self.w_threshold = w_threshold
        self.max_iter = max_iter
        self.h_tol = h_tol
        self.rho_max = rho_max
        self.loss = loss

    def _validate_params(self):
        validate_params(self, _PARAMETER_CONSTRAINTS)

    def fit(self, X, y=None):
        """Learn the DAG from ``X`` (n x d: a DataFrame, ItemData or array; rows are observations).

        Returns
        -------
        self
        """
        self._validate_params()
        values, names = _as_frame_values(X)
        W_raw, h, n_iter, history = notears_linear(values, self.lambda1, max_iter=self.max_iter, h_tol=self.h_tol,
                                                   rho_max=self.rho_max)
        W = W_raw.copy()
        W[np.abs(W) < self.w_threshold] = 0.0
        self.columns_ = names
        self.W_raw_ = W_raw
        self.W_ = W
        self.adjacency_ = W != 0
        self.h_ = h
        self.n_iter_ = n_iter
        self.history_ = history
        if h > self.h_tol:
            warnings.warn(f"NOTEARS stopped with h(W) = {h:.2e} > h_tol = {self.h_tol:g} (rho = {history[-1].rho:.0e}, "
                          f"{n_iter} iterations); raise rho_max or max_iter.", ConvergenceWarning, stacklevel=2)
        if has_directed_cycle(self.adjacency_):
            warnings.warn(f"The thresholded graph has a directed cycle (h = {h:.2e}); raise w_threshold.",
                          ConvergenceWarning, stacklevel=2)
        return self

    def _check_fitted(self):
        if not hasattr(self, "W_"):
            raise LatentsemError("This NOTEARS instance is not fitted yet; call fit(X) first.")

    def to_graph_dict(self):
        """``{"nodes": [...], "edges": [{"source", "target", "weight"}, ...]}`` of the thresholded graph."""
        self._check_fitted()
        return weights_to_graph_dict(self.W_, self.columns_)

    def to_lavaan(self):
        """lavaan syntax of the fitted DAG as a path model (see :func:`dag_to_lavaan`)."""
        self._check_fitted()
        return dag_to_lavaan(self.W_, self.columns_)

    def edges(self):
        """``[(source, target, weight), ...]`` of the thresholded graph, row-major."""
        self._check_fitted()
        return [(e["source"], e["target"], e["weight"]) for e in self.to_graph_dict()["edges"]]


def notears_reference(X, lambda1=0.1, max_iter=100, h_tol=1e-8, rho_max=1e16):
    """The authors' linear NOTEARS loop as they wrote it (no covariance trick, no rescaling).

    Kept as the oracle of the tests and the speed baseline of ``benchmarks/notears.py``;
    returns W before thresholding.
    """
    import scipy.linalg as sla
    import scipy.optimize as sopt

    n, d = X.shape
    X = X - X.mean(axis=0, keepdims=True)

    def adj(w):
        return (w[:d * d] - w[d * d:]).reshape(d, d)

    def h_of(W):
        E = sla.expm(W * W)
        return np.trace(E) - d, E.T * W * 2

    def func(w):
        W = adj(w)
        R = X - X @ W
        loss, g_loss = 0.5 / n * (R ** 2).sum(), -1.0 / n * X.T @ R
        h, g_h = h_of(W)
        g = g_loss + (rho * h + alpha) * g_h
        return (loss + 0.5 * rho * h * h + alpha * h + lambda1 * w.sum(),
                np.concatenate((g + lambda1, -g + lambda1), axis=None))

    w_est, rho, alpha, h = np.zeros(2 * d * d), 1.0, 0.0, np.inf
    bounds = [(0, 0) if i == j else (0, None) for _ in range(2) for i in range(d) for j in range(d)]
    for _ in range(max_iter):
        while rho < rho_max:
            w_new = sopt.minimize(func, w_est, method="L-BFGS-B", jac=True, bounds=bounds).x
            h_new, _ = h_of(adj(w_new))
            if h_new > 0.25 * h:
                rho *= 10
            else:
                break
        w_est, h = w_new, h_new
        alpha += rho * h
        if h <= h_tol or rho >= rho_max:
            break
    return adj(w_est)


# ------------------------------------------------------------------ methods -> (D, U) PDAGs
