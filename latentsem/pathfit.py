"""Maximum likelihood for recursive path models among observed variables, without a numerical optimizer.

A path model whose variables are all observed, whose regressions form a DAG
and whose residuals are independent, except within groups of "pure"
dependents (variables that are regressed but predict nothing, the residual
covariances lavaan's ``sem()`` frees by ``auto.cov.y=TRUE``), has a normal
likelihood that factors along the DAG. With the observed exogenous block held
at its sample moments (lavaan ``fixed.x=TRUE``) the conditional
log-likelihood is

    sum_j log N(y_j | b_j' x_pa(j), psi_j)  +  sum_K log N(y_K | B_K' x_pa(K), Omega_K)

over the dependents j with an independent residual and the groups K of pure
dependents with correlated residuals (the map from residuals to variables is
triangular with unit diagonal, so its Jacobian is 1). Every term has its own
parameters and is maximized on its own:

* a dependent with an independent residual: least squares on the divisor-N
  covariance ``S`` (the regression MLE), ``b = S_PP^-1 S_Py`` and
  ``psi = s_yy - S_yP b``;
* a group K of pure dependents whose residuals covary freely (their
  regressors may differ): seemingly unrelated regressions (Zellner 1962),
  whose MLE is the fixed point of feasible GLS iterated to convergence
  (Oberhofer & Kmenta 1974): GLS with weight ``Omega^-1``, then ``Omega`` =
  the residual covariance of the new coefficients, until neither moves. It
  is exact after one step when the group's members share their regressors.

These are the estimates lavaan's ``sem()`` converges to for such syntax;
latentsem.fit computes the fit indices from them as for any other model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import has_directed_cycle

MAX_SUR_ITERATIONS = 1000
SUR_TOLERANCE = 1e-13   # relative change of the coefficients and residual covariances that ends the GLS iteration


@dataclass(frozen=True)
class PathModelEstimates:
    """ML estimates of a recursive path model, one value per row of its parameter table.

    ``values[k]`` is the estimate of row k (the sample moment for ``exo``
    rows); ``n_iter`` counts GLS sweeps of the largest correlated group (0
    when every residual is independent); ``converged`` is False when a
    group's GLS iteration hit :data:`MAX_SUR_ITERATIONS`.
    """

    values: tuple
    n_iter: int
    converged: bool


def is_recursive_path_model(table) -> bool:
    """Whether :func:`fit_recursive_path_model` gives the ML estimates of the completed ``table``.

    True for tables (as :func:`latentsem.syntax.complete_table` completes
    them) without latent variables, whose free parameters are unlabelled
    regressions forming a DAG, one residual variance per dependent variable,
    and residual covariances only among pure dependents, each connected
    group of which covaries completely (every pair free). Observed exogenous
    variables must be held by ``exo`` rows and nothing may be fixed.
    """
    if table.latent:
        return False
    observed = table.observed
    index = {name: i for i, name in enumerate(observed)}
    dependent = {r.lhs for r in table if r.op == "~"}
    predictor = {r.rhs for r in table if r.op == "~"}
    exogenous = {r.lhs for r in table if r.exo} | {r.rhs for r in table if r.exo}
    if exogenous & dependent or set(observed) != dependent | exogenous:
        return False
    variances, pairs = set(), set()
    D = np.zeros((len(observed), len(observed)), dtype=bool)
    for r in table:
        if r.exo:
            continue
        if not r.free or r.label or r.op not in ("~", "~~"):
            return False
        if r.op == "~":
            D[index[r.rhs], index[r.lhs]] = True
        elif r.lhs == r.rhs:
            variances.add(r.lhs)
        elif r.lhs in predictor or r.rhs in predictor:
            return False        # a residual covariance with a predictor: not block recursive
        else:
            pairs.add(frozenset((r.lhs, r.rhs)))
    if variances != dependent or has_directed_cycle(D):
        return False
    return all(frozenset((a, b)) in pairs for group in _covarying_groups(pairs)
               for i, a in enumerate(group) for b in group[i + 1:])


def _covarying_groups(pairs):
    """Connected components (sorted name lists) of the graph whose edges are ``pairs``."""
    groups = []
    for pair in pairs:
        touching = [g for g in groups if g & pair]
        merged = set(pair).union(*touching)
        groups = [g for g in groups if not g & pair] + [merged]
    return [sorted(g) for g in groups]


def fit_recursive_path_model(table, S) -> PathModelEstimates:
    """ML estimates of a table for which :func:`is_recursive_path_model` holds.

    Parameters
    ----------
    table : ParameterTable
        A completed table (:func:`latentsem.syntax.complete_table`).
    S : numpy.ndarray
        Sample covariance (divisor N) of ``table.observed``, in that order; positive definite.

    Returns
    -------
    PathModelEstimates
    """
    observed = table.observed
    index = {name: i for i, name in enumerate(observed)}
    parents = {}
    for r in table:
        if r.op == "~":
            parents.setdefault(r.lhs, []).append(index[r.rhs])
    pairs = {frozenset((r.lhs, r.rhs)) for r in table if r.op == "~~" and not r.exo and r.lhs != r.rhs}
    groups = _covarying_groups(pairs)
    grouped = {name for group in groups for name in group}
    coefficient, covariance, n_iter, converged = {}, {}, 0, True
    for name, pa in parents.items():
        if name not in grouped:
            b = np.linalg.solve(S[np.ix_(pa, pa)], S[pa, index[name]])     # least squares, b = S_PP^-1 S_Py
            coefficient[name] = b
            covariance[name, name] = float(S[index[name], index[name]] - S[index[name], pa] @ b)
    for group in groups:
        B, Omega, sweeps, done = _seemingly_unrelated(S, [index[y] for y in group], [parents[y] for y in group])
        n_iter, converged = max(n_iter, sweeps), converged and done
        for i, y in enumerate(group):
            coefficient[y] = B[i]
            for j, z in enumerate(group):
                covariance[y, z] = float(Omega[i, j])
    values, position = [], {name: 0 for name in parents}
    for r in table:
        if r.exo:
            values.append(float(S[index[r.lhs], index[r.rhs]]))
        elif r.op == "~":
            values.append(float(coefficient[r.lhs][position[r.lhs]]))
            position[r.lhs] += 1
        else:
            values.append(covariance[r.lhs, r.rhs])
    return PathModelEstimates(tuple(values), n_iter, converged)


def _residual_covariance(S, ys, pas, B):
    """Covariance of the residuals y_i - b_i' x_pa(i): S_yy - B'S_xy - S_yx B + B'S_xx B, from S alone."""
    m = len(ys)
    E = np.empty((m, m))
    for i in range(m):
        for j in range(i, m):
            value = (S[ys[i], ys[j]] - B[i] @ S[pas[i], ys[j]] - S[ys[i], pas[j]] @ B[j]
                     + B[i] @ S[np.ix_(pas[i], pas[j])] @ B[j])
            E[i, j] = E[j, i] = value
    return E


def _seemingly_unrelated(S, ys, pas):
    """Iterated feasible GLS for the equations y_i = b_i' x_pa(i) + e_i with Cov(e) = Omega free.

    Normal equations for a given ``Q = Omega^-1``, with the coefficients of all
    equations stacked: ``sum_j Q_ij S_{P_i P_j} b_j = sum_j Q_ij S_{P_i y_j}``.
    Starts from least squares (``Q = I``). Returns (B as a list of arrays,
    Omega, sweeps, converged).
    """
    m = len(ys)
    offsets = np.cumsum([0] + [len(pa) for pa in pas])
    blocks = [[S[np.ix_(pas[i], pas[j])] for j in range(m)] for i in range(m)]
    cross = [[S[pas[i], ys[j]] for j in range(m)] for i in range(m)]
    Q = np.eye(m)
    previous = None
    for sweep in range(1, MAX_SUR_ITERATIONS + 1):
        M = np.block([[Q[i, j] * blocks[i][j] for j in range(m)] for i in range(m)])
        rhs = np.concatenate([sum(Q[i, j] * cross[i][j] for j in range(m)) for i in range(m)])
        beta = np.linalg.solve(M, rhs)
        B = [beta[offsets[i]:offsets[i + 1]] for i in range(m)]
        Omega = _residual_covariance(S, ys, pas, B)
        current = np.concatenate([beta, Omega.ravel()])
        if previous is not None and np.max(np.abs(current - previous)) <= SUR_TOLERANCE * np.max(np.abs(current)):
            return B, Omega, sweep, True
        previous = current
        Q = np.linalg.inv(Omega)
    return B, Omega, MAX_SUR_ITERATIONS, False
