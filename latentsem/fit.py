"""Fit a model by maximum likelihood (semopy) and report fit indices exactly as lavaan does.

semopy only supplies the estimates, and not even those for recursive path
models among observed variables (a DAG of regressions, such as the one
``latentsem notears`` prints), whose ML estimates latentsem.pathfit computes
in closed form. Everything printed is computed here from
the sample covariance ``S`` (divisor N) and the model-implied ``Sigma``, with
lavaan 0.6-14's formulas (``lav_fit_*.R``; REFERENCE.md section 3):

* chi2 = N * F_ML with F_ML = log|Sigma| + tr(S Sigma^-1) - log|S| - p
  (N, not N - 1: lavaan's ``likelihood="normal"``);
* RMSEA with N and its 90% CI by inverting the noncentral chi-square;
* CFI clamped to [0, 1] (lavaan's ``lav_fit_cfi``), TLI unclamped;
* SRMR as Bentler's, lavaan's default for ML without a mean structure;
* logLik, AIC and BIC of the normal likelihood with saturated means.

Index names are lavaan's ``fitMeasures()`` names with dots written as
underscores (``rmsea.ci.lower`` -> ``rmsea_ci_lower``) and ``logl`` written
``loglik``. Standard errors use lavaan's default expected information.

Bounds, as measured on semopy 2.3.11 against lavaan 0.6-14: semopy gives
every variance parameter (the diagonals of its Psi and Theta matrices,
observed residual and latent variances alike) the bound (0, None) and passes
the bounds to SLSQP; covariances and loadings are unbounded; its ML
objective returns +inf whenever Sigma is not positive definite. That is
lavaan's ``bounds="pos.var"`` (fixtures ``byrne1994_dag_table3``,
``himi_second_order_bounded``) and ``bounds=True`` here, the convention of
the LGES paper's Table 3. ``bounds=False`` sets every semopy bound to
(None, None) before the fit, which reproduces lavaan's default unbounded fit,
negative variances included (fixture ``byrne1994_dag_unbounded``: RC2's
residual variance -1.172 as in lavaan), as long as Sigma stays positive
definite along the way.

Every parameter is written out for semopy (``cov_diag=True``, all
covariances explicit, every free parameter named), so semopy's own defaults
never apply; the implied covariance semopy reports is checked against the
parameter table's before any index is computed.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import numpy as np

from .exceptions import ConvergenceWarning, DataError, LatentsemError, NumericalWarning, StructureError
from .model import Structure
from .syntax import (LATENT_COVARIANCES, ParameterTable, as_table, complete_table, lavaan_for_fit, semopy_description,
                     table_to_structure, to_lavaan)

logger = logging.getLogger(__name__)

INDEX_NAMES = ("npar", "chisq", "df", "pvalue", "rmsea", "rmsea_ci_lower", "rmsea_ci_upper",
               "cfi", "tli", "srmr", "loglik", "aic", "bic", "n", "baseline_chisq", "baseline_df")
# Columns of a model comparison; +1: higher is better, -1: lower is better, 0: not ranked.
COMPARISON_COLUMNS = {"npar": 0, "chisq": 0, "df": 0, "rmsea": -1, "rmsea_ci_lower": 0, "rmsea_ci_upper": 0,
                      "cfi": 1, "tli": 1, "srmr": -1, "aic": -1, "bic": -1}
_SOLVER_OPTIONS = {"ftol": 1e-12, "maxiter": 10000}
# Start patterns tried for models whose latents share their items (see _asymmetric_group_starts).
GROUP_START_VARIANTS = (0, 1, 2)


# ====================================================== indices (pure functions)
def ml_discrepancy(S, Sigma):
    """F_ML = log|Sigma| + tr(S Sigma^-1) - log|S| - p (lavaan's fmin is F/2)."""
    p = S.shape[0]
    _, logdet_sigma = np.linalg.slogdet(Sigma)
    _, logdet_s = np.linalg.slogdet(S)
    return float(logdet_sigma + np.trace(np.linalg.solve(Sigma, S)) - logdet_s - p)


def baseline_chi_square(S, n, exogenous=()):
    """Chi-square and df of lavaan's independence model.

    Every variable independent: chi2_0 = N (sum_i log s_ii - log|S|),
    df_0 = p(p - 1)/2. With observed exogenous variables (``fixed.x``) their
    block keeps its sample covariances: log|S_xx| replaces their log s_ii and
    their px(px - 1)/2 covariances leave the df.
    """
    p = S.shape[0]
    exo = list(exogenous)
    rest = [i for i in range(p) if i not in set(exo)]
    logdet_s = np.linalg.slogdet(S)[1]
    log_indep = float(np.sum(np.log(np.diag(S)[rest])))
    if exo:
        log_indep += float(np.linalg.slogdet(S[np.ix_(exo, exo)])[1])
    px = len(exo)
    return float(n * (log_indep - logdet_s)), p * (p - 1) // 2 - px * (px - 1) // 2


def rmsea(chisq, df, n):
    """RMSEA = sqrt(max(chi2/N/df - 1/N, 0)), with N (lavaan ``lav_fit_rmsea``); 0 when df = 0."""
    if df <= 0:
        return 0.0
    return math.sqrt(max(chisq / n / df - 1.0 / n, 0.0))


def _chi2_cdf(x, df, ncp=0.0):
    """P(chi2_df(ncp) <= x): scipy.special's chdtr / chndtr, the functions scipy.stats' chi2 and ncx2 call.

    Called directly because importing scipy.stats costs about 0.6 s, most of a
    path model's fit (the ``latentsem notears`` CLI fits one).
    """
    from scipy.special import chdtr, chndtr

    x = max(float(x), 0.0)
    if ncp <= 0:
        return float(chdtr(df, x))
    with np.errstate(over="ignore"):
        return float(chndtr(x, df, ncp))


def _chi2_sf(x, df):
    """P(chi2_df > x) by scipy.special's chdtrc (scipy.stats' chi2.sf), exact in the far tail."""
    from scipy.special import chdtrc

    return float(chdtrc(df, max(float(x), 0.0)))


def rmsea_ci(chisq, df, n, level=0.90):
    """90% CI of the RMSEA by inverting the noncentral chi-square (lavaan ``lav_fit_rmsea_ci``).

    lower: the ncp with P(chi2_df(ncp) <= X2) = 0.95 (0 when even ncp = 0 gives less);
    upper: the ncp with P = 0.05, searched on [0, max(N, 4 X2)]; each bound is
    sqrt(ncp / (N df)).
    """
    from scipy.optimize import brentq

    def cdf(ncp):
        return _chi2_cdf(chisq, df, ncp)

    upper_p, lower_p = 1 - (1 - level) / 2, (1 - level) / 2
    if df < 1 or cdf(0) - upper_p < 0:
        lower = 0.0
    else:
        lower = math.sqrt(brentq(lambda ncp: cdf(ncp) - upper_p, 0, chisq, xtol=1e-12) / (n * df))
    top = max(n, 4 * chisq)
    if df < 1 or cdf(top) - lower_p > 0 or cdf(0) - lower_p < 0:
        upper = 0.0
    else:
        upper = math.sqrt(brentq(lambda ncp: cdf(ncp) - lower_p, 0, top, xtol=1e-12) / (n * df))
    return lower, upper


def cfi(chisq, df, chisq_null, df_null):
    """CFI = 1 - max(X2 - df, 0) / max(X2 - df, X2_0 - df_0, 0), clamped as lavaan ``lav_fit_cfi``."""
    t1 = max(chisq - df, 0.0)
    t2 = max(chisq - df, chisq_null - df_null, 0.0)
    if math.isclose(t1, 0.0, abs_tol=1.5e-8) and math.isclose(t2, 0.0, abs_tol=1.5e-8):
        return 1.0
    return 1.0 - t1 / t2


def tli(chisq, df, chisq_null, df_null):
    """TLI = 1 - ((X2 - df) df_0) / ((X2_0 - df_0) df), not clamped (lavaan ``lav_fit_tli``); 1 when df = 0."""
    t1 = (chisq - df) * df_null
    t2 = (chisq_null - df_null) * df
    if df > 0 and abs(t2) > 0:
        return 1.0 - t1 / t2
    return 1.0


def srmr(S, Sigma):
    """Bentler's SRMR: RMS of (s_ij - sigma_ij) / sqrt(s_ii s_jj) over the lower triangle, diagonal included."""
    sd = np.sqrt(np.diag(S))
    residual = (S - Sigma) / np.outer(sd, sd)
    lower = residual[np.tril_indices_from(residual)]
    return float(np.sqrt(np.mean(lower ** 2)))


def loglik(S, Sigma, n):
    """Normal log-likelihood with saturated means: -N/2 (p log 2 pi + log|Sigma| + tr(S Sigma^-1))."""
    p = S.shape[0]
    return float(-n / 2 * (p * math.log(2 * math.pi) + np.linalg.slogdet(Sigma)[1]
                           + np.trace(np.linalg.solve(Sigma, S))))


def fit_indices(S, Sigma, n, npar, df, exogenous=()):
    """Every index of :data:`INDEX_NAMES` for sample ``S`` (divisor N) and implied ``Sigma``.

    With observed exogenous variables (``exogenous``, indices into S; lavaan
    ``fixed.x=TRUE``) the log-likelihood is lavaan's conditional one: the
    joint minus the saturated marginal of the exogenous block (measured
    against lavaan 0.6-14).
    """
    chisq = n * ml_discrepancy(S, Sigma)
    chisq_null, df_null = baseline_chi_square(S, n, exogenous)
    lower, upper = rmsea_ci(chisq, df, n)
    ll = loglik(S, Sigma, n)
    if len(exogenous):
        block = S[np.ix_(list(exogenous), list(exogenous))]
        ll -= loglik(block, block, n)
    return {
        "npar": int(npar), "chisq": chisq, "df": int(df),
        "pvalue": _chi2_sf(chisq, df) if df > 0 else float("nan"),
        "rmsea": rmsea(chisq, df, n), "rmsea_ci_lower": lower, "rmsea_ci_upper": upper,
        "cfi": float(cfi(chisq, df, chisq_null, df_null)), "tli": float(tli(chisq, df, chisq_null, df_null)),
        "srmr": srmr(S, Sigma), "loglik": ll,
        "aic": -2 * ll + 2 * npar, "bic": -2 * ll + npar * math.log(n), "n": int(n),
        "baseline_chisq": chisq_null, "baseline_df": int(df_null),
    }


def truncate3(x):
    """Truncate (not round) to 3 decimals, the convention of the LGES paper's Table 3 (0.76753 -> 0.767)."""
    if x is None or not math.isfinite(x):
        return x
    return float(Decimal(repr(float(x))).quantize(Decimal("0.001"), rounding=ROUND_DOWN))


# ============================================================ RAM model algebra
class _RamModel:
    """Sigma(theta) of a completed parameter table in RAM form.

    Variables v = observed + latent; A[i, j] is the effect j -> i, P the
    (residual) covariances; C = (I - A)^-1 P (I - A)^-T, Sigma = C[obs, obs].
    Free rows share a theta entry when they share a label.
    """

    def __init__(self, table, S):
        self.table = table
        self.observed, self.latent = table.observed, table.latent
        self.names = self.observed + self.latent
        index = {n: i for i, n in enumerate(self.names)}
        self.p, self.size = len(self.observed), len(self.names)
        self.param_names, slot = [], {}
        self.row_param = []
        for k, r in enumerate(table):
            if not r.free or r.exo:
                self.row_param.append(None)
                continue
            name = r.label or f"lsem_p{k}"
            if name not in slot:
                slot[name] = len(self.param_names)
                self.param_names.append(name)
            self.row_param.append(slot[name])
        self.locations = []
        for r in table:
            if r.op == "=~":
                self.locations.append(("A", index[r.rhs], index[r.lhs]))
            elif r.op == "~":
                self.locations.append(("A", index[r.lhs], index[r.rhs]))
            else:
                self.locations.append(("P", index[r.lhs], index[r.rhs]))
        self.fixed_values = []
        for r in table:
            if r.exo:
                i, j = self.observed.index(r.lhs), self.observed.index(r.rhs)
                self.fixed_values.append(float(S[i, j]))
            else:
                self.fixed_values.append(r.value)

    @property
    def npar(self):
        return len(self.param_names)

    def row_values(self, theta):
        return [theta[k] if k is not None else v for k, v in zip(self.row_param, self.fixed_values)]

    def matrices(self, theta):
        A = np.zeros((self.size, self.size))
        P = np.zeros((self.size, self.size))
        for (kind, i, j), value in zip(self.locations, self.row_values(theta)):
            if kind == "A":
                A[i, j] = value
            else:
                P[i, j] = P[j, i] = value
        return A, P

    def implied(self, theta):
        """(Sigma of the observed variables, C of all variables)."""
        A, P = self.matrices(theta)
        M = np.linalg.inv(np.eye(self.size) - A)
        C = M @ P @ M.T
        return C[: self.p, : self.p], C

    def sigma_derivatives(self, theta):
        """d Sigma / d theta_k for every free parameter: (k, p, p)."""
        A, P = self.matrices(theta)
        M = np.linalg.inv(np.eye(self.size) - A)
        C = M @ P @ M.T
        out = np.zeros((self.npar, self.size, self.size))
        for (kind, i, j), k in zip(self.locations, self.row_param):
            if k is None:
                continue
            if kind == "A":  # dC/dA_ij = M E_ij C + (M E_ij C)'
                part = np.outer(M[:, i], C[j, :])
                out[k] += part + part.T
            else:  # dC/dP_ij = M (E_ij + E_ji) M' (once on the diagonal)
                part = np.outer(M[:, i], M[:, j])
                out[k] += part + part.T if i != j else part
        return out[:, : self.p, : self.p]


def _standard_errors(ram, theta, n):
    """lavaan's default SEs: expected information I_ab = tr(Sigma^-1 dSigma_a Sigma^-1 dSigma_b)/2, vcov = I^-1 / N."""
    if ram.npar == 0:
        return np.zeros(0), True
    Sigma, _ = ram.implied(theta)
    inv = np.linalg.inv(Sigma)
    W = np.einsum("ij,kjl->kil", inv, ram.sigma_derivatives(theta))
    info = 0.5 * np.einsum("aij,bji->ab", W, W)
    if np.linalg.matrix_rank(info) < ram.npar:
        return np.full(ram.npar, np.nan), False
    vcov = np.linalg.inv(info) / n
    return np.sqrt(np.clip(np.diag(vcov), 0, None)), True


# ======================================================================= fitting
@contextmanager
def _quiet_root_logger():
    # semopy reports through the root logger ("No fixed loadings ..."); the library is silent by default.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _estimate(full, ram, frame, S, bounds):
    """ML estimates: (theta, converged, message, iterations).

    Recursive path models among observed variables are solved by least
    squares and iterated GLS (latentsem.pathfit; milliseconds, no semopy):
    their residual variances are positive whenever S is, so ``bounds`` does
    not change them. Every other model, or a singular S, goes to semopy.
    """
    from .pathfit import fit_recursive_path_model, is_recursive_path_model

    if is_recursive_path_model(full) and np.all(np.linalg.eigvalsh(S) > 0):
        estimates = fit_recursive_path_model(full, S)
        if estimates.converged:
            theta = np.zeros(ram.npar)
            for k, value in zip(ram.row_param, estimates.values):
                if k is not None:
                    theta[k] = value
            return theta, True, "closed form (least squares and iterated GLS)", estimates.n_iter
    return _semopy_fit(full, ram, frame, S, bounds)


def _semopy_fit(full, ram, frame, S, bounds):
    """Estimates from semopy's ML fit: (theta, converged, message, iterations)."""
    import pandas as pd
    import semopy

    names = [ram.param_names[k] if k is not None else "" for k in ram.row_param]
    description = semopy_description(full, names)
    observed = ram.observed
    cov = pd.DataFrame(S, index=observed, columns=observed)

    def fit_from(starts):
        with _quiet_root_logger():
            # cov_diag=True: semopy adds no covariances of its own; the completed table lists every one.
            model = semopy.Model(description, cov_diag=True)
            if not bounds:  # semopy bounds every variance at 0 by default (lavaan "pos.var")
                for param in model.parameters.values():
                    param.bound = (None, None)
            _unscaled_loading_starts(full, names, model, S, observed)
            for name, value in starts.items():
                if name in model.parameters:
                    model.parameters[name].start = float(value)
            return model, model.fit(data=frame[observed], cov=cov, obj="MLW", solver="SLSQP",
                                    options=dict(_SOLVER_OPTIONS))

    later = _later_group_members(full, observed)
    starts = [{}]
    if later:  # latents that share their items: several starts (see _asymmetric_group_starts)
        starts = [_asymmetric_group_starts(full, names, later, S, observed, variant)
                  for variant in GROUP_START_VARIANTS]
        engine = _engine_starts(full, names, S, observed)
        if engine is not None:
            starts.append(engine)
    fits = [fit_from(start) for start in starts or [{}]]
    # The lowest objective among converged fits (a fit stopped at the iteration limit is not an optimum).
    model, result = min(fits, key=lambda fit: (not fit[1].success, fit[1].fun))
    active = [name for name, param in model.parameters.items() if param.active]
    values = dict(zip(active, np.asarray(model.param_vals, dtype=float)))
    missing = [name for name in ram.param_names if name not in values]
    if missing:
        raise LatentsemError(f"semopy did not estimate the parameters {missing}; check the model syntax.")
    theta = np.array([values[name] for name in ram.param_names])
    _check_same_model(model, ram, theta)
    return theta, bool(result.success), str(getattr(result, "message", "")), int(getattr(result, "n_it", 0) or 0)


def _check_same_model(model, ram, theta):
    """semopy's implied covariance must equal ours at the estimate, or the indices would describe another model.

    Another model differs by far more than rounding; the two computations of
    Sigma (semopy's and our RAM algebra) round differently by up to about 1e-8
    of its scale when (I - B) or a rotation-free group is ill-conditioned
    (seen on a Big Five model: 4.1e-9), so the tolerance is 1e-7 of the scale.
    """
    sigma, _ = model.calc_sigma()
    order = [model.vars["observed"].index(name) for name in ram.observed]
    theirs = np.asarray(sigma)[np.ix_(order, order)]
    ours, _ = ram.implied(theta)
    if not np.allclose(theirs, ours, rtol=1e-7, atol=1e-7 * np.max(np.abs(ours))):
        raise LatentsemError("semopy fitted a different model than the parameter table describes "
                             f"(max covariance difference {np.max(np.abs(theirs - ours)):.3g}); please report this model.")


def _unscaled_loading_starts(full, names, model, S, observed):
    """Start loadings of latents without a fixed loading (std.lv-style fits) away from 0.

    semopy starts such loadings at 0, a saddle point of F_ML where its
    optimizer can stall (REFERENCE section 4); sqrt(s_ii / 2) is the loading
    that explains half of the item's variance with a unit latent variance.
    """
    params = model.parameters
    scaled = {r.lhs for r in full if r.op == "=~" and not r.free}
    for r, name in zip(full, names):
        if r.op != "=~" or not r.free or r.rhs not in observed or r.lhs in scaled:
            continue
        if name in params and params[name].start is None:
            i = observed.index(r.rhs)
            params[name].start = float(np.sqrt(S[i, i] / 2))


def _later_group_members(full, observed):
    """{latent: k} for the k-th (k >= 1) latent whose items are the same as an earlier latent's (LGES groups)."""
    children = {}
    for r in full:
        if r.op == "=~" and r.rhs in observed:
            children.setdefault(r.lhs, set()).add(r.rhs)
    members = {}
    for latent, items in children.items():
        members.setdefault(frozenset(items), []).append(latent)
    return {lat: k for group in members.values() for k, lat in enumerate(group) if k}


def _asymmetric_group_starts(full, names, later, S, observed, variant=0):
    """Start loadings ({parameter: value}) that differ between latents with the same items.

    Identical starts make such latents move identically: the fit stays on the
    symmetric subspace, where the group acts as one latent, and stops at a
    saddle point of F_ML (multitasking's discovered model: chi2 51.02 instead
    of about 31). The later members (``later``, :func:`_later_group_members`)
    start with the signs of their free loadings alternating (``variant`` 0 and
    1: the two phases) or with alternating sizes (``variant`` 2).
    """
    starts = {}
    for r, name in zip(full, names):
        if r.op != "=~" or not r.free or r.lhs not in later or r.rhs not in observed:
            continue
        i = observed.index(r.rhs)
        odd = (i + later[r.lhs] + variant) % 2
        factor = (0.5 if odd else 1.5) if variant == 2 else (-1.0 if odd else 1.0)
        starts[name] = factor * np.sqrt(S[i, i] / 2)
    return starts


def _engine_starts(full, names, S, observed):
    """Starts ({parameter: value}) at latentsem's own ML optimum (:func:`latentsem.score.score_spec`), or None.

    Used for models whose latents share their items (LGES's groups), where
    semopy's own starts can end at the iteration limit. The engine's unit
    disturbance variances are moved to the table's scale: each latent is
    rescaled so that its fixed loading takes its fixed value. None when the
    table is not a generalized N factor model the engine can fit.
    """
    from .score import ScoreSpec, score_spec

    try:
        structure = table_to_structure(ParameterTable([r for r in full if r.user]))
        spec = ScoreSpec.from_structure(structure)
        order = [observed.index(name) for name in structure.observed]
        params = score_spec(spec, S[np.ix_(order, order)], 1000, n_restarts=1, random_state=0).params
    except (LatentsemError, ValueError, np.linalg.LinAlgError):
        return None
    rows = {name: i for i, name in enumerate(structure.observed)}
    pos = {name: k for k, name in enumerate(spec.latent)}
    scale = np.ones(len(pos))
    for r in full:
        if r.op == "=~" and not r.free and r.value:
            scale[pos[r.lhs]] = params.Lambda[rows[r.rhs], pos[r.lhs]] / r.value
    if np.any(np.abs(scale) < 1e-8):
        return None
    starts = {}
    for r, name in zip(full, names):
        if not r.free:
            continue
        if r.op == "=~":
            starts[name] = params.Lambda[rows[r.rhs], pos[r.lhs]] / scale[pos[r.lhs]]
        elif r.op == "~" and r.lhs in pos and r.rhs in pos:
            starts[name] = params.B[pos[r.lhs], pos[r.rhs]] * scale[pos[r.lhs]] / scale[pos[r.rhs]]
        elif r.op == "~~" and r.lhs == r.rhs:
            starts[name] = scale[pos[r.lhs]] ** 2 if r.lhs in pos else params.psi[rows[r.lhs]]
    return starts


def _refuse_isolated_items(table):
    """Items that only have a variance (no loading, path or covariance) cannot be fitted by semopy.

    LGES leaves an item without any latent parent when it correlates with no
    other item; such an item adds nothing to the model but its own variance.
    """
    linked = {name for row in table if row.op != "~~" or row.lhs != row.rhs for name in (row.lhs, row.rhs)}
    isolated = [name for name in table.observed if name not in linked]
    if isolated:
        raise StructureError(f"The items {isolated} have no loading, path or covariance in the model (for LGES: no "
                             "latent parent was found for them); remove them from the model (the 'observed' list "
                             "of a structure JSON) and fit it again.")


def _observed_columns(table, data):
    frame = data.frame
    missing = [name for name in table.observed if name not in frame.columns]
    if missing:
        raise DataError(f"The model names {missing}, which {'is' if len(missing) == 1 else 'are'} not a column of the data "
                        f"({data.source}); fix the model or choose --columns that include "
                        f"{'it' if len(missing) == 1 else 'them'}.")
    return table.observed


def _as_item_data(data):
    if hasattr(data, "frame") and hasattr(data, "n"):
        return data
    from .data import items_from_frame

    return items_from_frame(data)


def _resolve_semantics(model, latent_covariances):
    if latent_covariances is None:
        return "dag" if isinstance(model, Structure) else "free"
    if latent_covariances not in LATENT_COVARIANCES:
        raise LatentsemError(f"The 'latent_covariances' parameter of fit_model must be one of {list(LATENT_COVARIANCES)} "
                         f"or None. Got {latent_covariances!r} instead.")
    return latent_covariances


@dataclass
class FitResult:
    """A fitted model: lavaan-exact indices, estimates, standardized solution, diagnostics.

    Attributes
    ----------
    indices : dict
        lavaan ``fitMeasures()`` values (:data:`INDEX_NAMES`).
    estimates : pandas.DataFrame
        One row per parameter: lhs, op, rhs, label, free, est, se, z,
        pvalue, std_all (lavaan ``parameterEstimates`` + ``std.all``).
    standardized : pandas.DataFrame
        lhs, op, rhs, est_std (lavaan ``standardizedSolution``, ``std.all``).
    converged : bool
        Whether the optimizer met its criterion.
    heywood : list of str
        Negative or zero-bounded variances, |standardized loading| > 1, |latent correlation| > 1.
    warnings : list of str
        Every warning emitted during the fit.
    """

    indices: dict
    estimates: object = field(repr=False)
    standardized: object = field(repr=False)
    converged: bool = True
    heywood: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    latent_covariances: str = "dag"
    bounds: bool = True
    syntax: str = field(default="", repr=False)
    observed: list = field(default_factory=list, repr=False)
    implied_cov: object = field(default=None, repr=False)
    sample_cov: object = field(default=None, repr=False)
    n_iter: int = 0
    source: str = ""

    def table3(self):
        """RMSEA / CFI / TLI truncated to 3 decimals (the LGES paper's Table 3 convention)."""
        return {k: truncate3(self.indices[k]) for k in ("rmsea", "cfi", "tli")}

    def summary(self):
        """Readable text in lavaan's order: test, baseline comparison, likelihood, RMSEA, SRMR, estimates."""
        ix = self.indices
        bound = "variances bounded at >= 0" if self.bounds else "unbounded variances (lavaan default)"
        lines = [
            f"latentsem fit: ML, N = {ix['n']}, {len(self.observed)} observed variables ({self.source or 'data'})",
            f"latent covariances: {self.latent_covariances}; {bound}; "
            f"{'converged' if self.converged else 'DID NOT CONVERGE'} after {self.n_iter} iterations",
            "",
            f"  Number of model parameters              {ix['npar']:>12d}",
            f"  Test statistic (chi-square)             {ix['chisq']:>12.3f}",
            f"  Degrees of freedom                      {ix['df']:>12d}",
            f"  P-value (Chi-square)                    {_fmt(ix['pvalue'])}",
            f"  Comparative Fit Index (CFI)             {_fmt(ix['cfi'])}",
            f"  Tucker-Lewis Index (TLI)                {_fmt(ix['tli'])}",
            f"  Loglikelihood user model (H0)           {ix['loglik']:>12.3f}",
            f"  Akaike (AIC)                            {ix['aic']:>12.3f}",
            f"  Bayesian (BIC)                          {ix['bic']:>12.3f}",
            f"  RMSEA                                   {_fmt(ix['rmsea'])}",
            f"  90 Percent confidence interval - lower  {_fmt(ix['rmsea_ci_lower'])}",
            f"  90 Percent confidence interval - upper  {_fmt(ix['rmsea_ci_upper'])}",
            f"  SRMR                                    {_fmt(ix['srmr'])}",
            "",
            "  Truncated to 3 decimals (LGES Table 3): RMSEA {rmsea} / CFI {cfi} / TLI {tli}".format(
                **{k: f"{v:.3f}" for k, v in self.table3().items()}),
        ]
        if self.heywood:
            lines += ["", "Heywood cases:"] + [f"  - {h}" for h in self.heywood]
        other = [w for w in self.warnings if w not in self.heywood]
        if other:
            lines += ["", "Warnings:"] + [f"  - {w}" for w in other]
        lines += ["", "Parameter estimates:"]
        est = self.estimates
        for r in est.itertuples(index=False):
            se = "" if not r.free else f"{r.se:9.3f}{r.z:9.3f}{r.pvalue:9.3f}"
            lines.append(f"  {r.lhs:>12} {r.op:<2} {r.rhs:<12}{r.est:10.3f}{se:<27}{r.std_all:9.3f}")
        return "\n".join(lines)

    def to_dict(self):
        return {
            "indices": {k: _json_number(v) for k, v in self.indices.items()},
            "table3": self.table3(),
            "converged": self.converged,
            "heywood": list(self.heywood),
            "warnings": list(self.warnings),
            "latent_covariances": self.latent_covariances,
            "bounds": self.bounds,
            "source": self.source,
            "observed": list(self.observed),
            "estimates": _records(self.estimates),
            "standardized": _records(self.standardized),
            "syntax": self.syntax,
        }

    def to_json(self, path=None, indent=2):
        """JSON text (NaN written as null); also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent) + "\n"
        if path is not None:
            Path(path).write_text(text)
        return text


def _fmt(value):
    return f"{value:>12.3f}" if value is not None and math.isfinite(value) else f"{'NA':>12}"


def _json_number(value):
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _records(frame):
    return [{k: _json_number(v) for k, v in rec.items()} for rec in frame.to_dict("records")]


def fit_model(model, data, latent_covariances=None, bounds=True) -> FitResult:
    """Fit a model to item data by ML and compute lavaan's fit indices.

    Parameters
    ----------
    model : Structure, ParameterTable or str
        A structure, a parameter table, or lavaan syntax text.
    data : ItemData (or pandas.DataFrame)
        Complete rows; the columns the model names are used, in the model's order.
    latent_covariances : {"dag", "free"} or None
        ``"dag"``: latents without an edge are independent (lavaan
        ``orthogonal=TRUE`` without residual covariances); ``"free"``: lavaan
        ``sem()`` defaults. ``None`` (default): ``"dag"`` for a Structure
        (discovered models), ``"free"`` for syntax and tables (as lavaan reads them).
    bounds : bool
        True (default): variances >= 0 (semopy's default, lavaan
        ``bounds="pos.var"``; the LGES Table 3 convention). False: unbounded
        as lavaan's default.

    Returns
    -------
    FitResult

    Raises
    ------
    DataError
        When the model names a column the data lack.
    ModelSyntaxError, StructureError
        For unreadable syntax, or a model with more parameters than moments.
    """
    semantics = _resolve_semantics(model, latent_covariances)
    data = _as_item_data(data)
    table = as_table(model, semantics)
    if not any(row.op in ("=~", "~") or (row.op == "~~" and row.lhs != row.rhs) for row in table):
        raise StructureError("The model has no loadings, regressions or covariances (an empty structure); "
                             "there is nothing to fit: give it at least one latent variable or path.")
    _refuse_isolated_items(table)
    full = complete_table(table, semantics)
    observed = _observed_columns(full, data)
    frame = data.frame[observed]
    S = np.cov(frame.to_numpy(dtype=float), rowvar=False, bias=True).reshape(len(observed), len(observed))
    n = data.n
    ram = _RamModel(full, S)
    exo = [observed.index(r.lhs) for r in full if r.exo and r.lhs == r.rhs]
    moments = len(observed) * (len(observed) + 1) // 2 - len(exo) * (len(exo) + 1) // 2
    df = moments - ram.npar
    if df < 0:
        raise StructureError(f"The model has {ram.npar} free parameters but only {moments} sample moments (df = {df}); "
                             "it is not identified: fix or remove parameters.")
    theta, converged, message, n_iter = _estimate(full, ram, frame, S, bounds)
    Sigma, C = ram.implied(theta)
    indices = fit_indices(S, Sigma, n, ram.npar, df, exo)
    se, identified = _standard_errors(ram, theta, n)
    estimates, standardized = _estimate_frames(full, ram, theta, se, C)
    messages = []
    if not converged:
        messages.append(f"The optimizer did not converge after {n_iter} iterations ({message}); the indices describe "
                        "the last iterate, not an optimum.")
        warnings.warn(messages[-1], ConvergenceWarning, stacklevel=2)
    if not identified:
        messages.append("The information matrix is singular: the model is not identified at the estimate, "
                        "standard errors are undefined (NaN).")
        warnings.warn(messages[-1], NumericalWarning, stacklevel=2)
    heywood = _heywood_cases(estimates, C, ram, bounds)
    if heywood:
        messages += heywood
        warnings.warn("Heywood case(s): " + "; ".join(heywood), NumericalWarning, stacklevel=2)
    return FitResult(indices=indices, estimates=estimates, standardized=standardized, converged=converged,
                     heywood=heywood, warnings=messages, latent_covariances=semantics, bounds=bool(bounds),
                     syntax=_syntax_of(model, full, semantics), observed=list(observed),
                     implied_cov=_frame(Sigma, observed), sample_cov=_frame(S, observed),
                     n_iter=n_iter, source=str(getattr(data, "source", "")))


def _syntax_of(model, full, semantics):
    """lavaan syntax that lavaan's plain ``sem()`` fits as the same model (with the orientation comment for structures)."""
    if isinstance(model, Structure):
        return to_lavaan(model, semantics)
    return lavaan_for_fit(full)


def _frame(matrix, names):
    import pandas as pd

    return pd.DataFrame(matrix, index=names, columns=names)


def _standardize(r, value, C, index, residual):
    """lavaan ``std.all``: loadings and regressions by total SDs; variances by total variance;
    covariances by the residual variances (a residual correlation)."""
    sd = np.sqrt(np.clip(np.diag(C), 0, None))
    i, j = index[r.lhs], index[r.rhs]
    with np.errstate(divide="ignore", invalid="ignore"):
        if r.op == "=~":
            return value * sd[i] / sd[j]
        if r.op == "~":
            return value * sd[j] / sd[i]
        if i == j:
            return value / C[i, i]
        return value / np.sqrt(residual[r.lhs] * residual[r.rhs])


def _estimate_frames(full, ram, theta, se, C):
    import pandas as pd
    from scipy.special import ndtr

    index = {n: i for i, n in enumerate(ram.names)}
    values = ram.row_values(theta)
    residual = {r.lhs: v for r, v in zip(full, values) if r.op == "~~" and r.lhs == r.rhs}
    rows = []
    for r, k, value in zip(full, ram.row_param, values):
        s = float(se[k]) if k is not None else float("nan")
        z = value / s if k is not None and s > 0 else float("nan")
        p = float(2 * ndtr(-abs(z))) if math.isfinite(z) else float("nan")  # norm.sf without importing scipy.stats
        rows.append((r.lhs, r.op, r.rhs, r.label, k is not None, float(value), s, z, p,
                     float(_standardize(r, value, C, index, residual))))
    estimates = pd.DataFrame(rows, columns=["lhs", "op", "rhs", "label", "free", "est", "se", "z", "pvalue", "std_all"])
    standardized = estimates[["lhs", "op", "rhs", "std_all"]].rename(columns={"std_all": "est_std"})
    return estimates, standardized


def _heywood_cases(estimates, C, ram, bounds):
    """Negative or zero-bounded variances, standardized loadings beyond +-1, latent correlations beyond +-1."""
    cases = []
    latent = set(ram.latent)
    for r in estimates.itertuples(index=False):
        if not r.free:
            continue
        if r.op == "~~" and r.lhs == r.rhs:
            total = C[ram.names.index(r.lhs), ram.names.index(r.lhs)]
            scale = max(abs(total), 1e-300)
            if r.est < 0:
                cases.append(f"variance of {r.lhs} is negative ({r.est:.4g})")
            elif bounds and r.est <= 1e-6 * scale:
                cases.append(f"variance of {r.lhs} is at the zero bound ({r.est:.3g})")
        elif r.op == "=~" and abs(r.std_all) > 1:
            cases.append(f"standardized loading {r.lhs} =~ {r.rhs} is {r.std_all:.3f} (|value| > 1)")
        elif r.op == "~~" and r.lhs in latent and r.rhs in latent and abs(r.std_all) > 1:
            cases.append(f"latent correlation {r.lhs} ~~ {r.rhs} is {r.std_all:.3f} (|value| > 1)")
    return cases


# ================================================================== comparison
@dataclass
class ModelComparison:
    """Fit indices of several models side by side; ``best`` names the best model per ranked column."""

    table: object = field(repr=False)
    best: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict, repr=False)
    notes: list = field(default_factory=list)

    def summary(self):
        """One row per model; the best value in each ranked column is marked with '*'."""
        header = ["model", "npar", "chisq", "df", "RMSEA [90% CI]", "CFI", "TLI", "SRMR", "AIC", "BIC"]
        body = []
        for name, r in self.table.iterrows():
            def mark(column, text):
                return text + ("*" if self.best.get(column) == name else " ")
            body.append([
                str(name), f"{int(r['npar'])} ", f"{r['chisq']:.3f} ", f"{int(r['df'])} ",
                mark("rmsea", f"{r['rmsea']:.3f} [{r['rmsea_ci_lower']:.3f}, {r['rmsea_ci_upper']:.3f}]"),
                mark("cfi", f"{r['cfi']:.3f}"), mark("tli", f"{r['tli']:.3f}"), mark("srmr", f"{r['srmr']:.3f}"),
                mark("aic", f"{r['aic']:.3f}"), mark("bic", f"{r['bic']:.3f}"),
            ])
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(header, widths)))]
        lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in body]
        lines.append("* best value in the column (lowest RMSEA, SRMR, AIC, BIC; highest CFI, TLI)")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self):
        def value(key, v):
            return int(v) if key in ("npar", "df") else _json_number(float(v))

        return {"models": {name: {k: value(k, v) for k, v in row.items()} for name, row in self.table.iterrows()},
                "best": dict(self.best), "notes": list(self.notes),
                "warnings": {name: list(res.warnings) for name, res in self.results.items()}}

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent) + "\n"


def compare_models(models, data, latent_covariances=None, bounds=True) -> ModelComparison:
    """Fit every model in ``{name: model}`` to the same data and tabulate the indices.

    Models that use different items cannot be compared by chi2, AIC or BIC;
    then only the scale-free indices (RMSEA, CFI, TLI, SRMR) are ranked.
    """
    import pandas as pd

    if not models:
        raise LatentsemError("No models to compare; give at least one, e.g. --model A=a.lav.")
    results = {name: fit_model(model, data, latent_covariances=latent_covariances, bounds=bounds)
               for name, model in models.items()}
    table = pd.DataFrame({name: {c: res.indices[c] for c in COMPARISON_COLUMNS} for name, res in results.items()}).T
    notes = []
    ranked = dict(COMPARISON_COLUMNS)
    if len({tuple(sorted(res.observed)) for res in results.values()}) > 1:
        ranked.update(aic=0, bic=0)
        notes.append("the models use different items, so AIC and BIC are not comparable and are not ranked")
    best = {}
    for column, direction in ranked.items():
        if direction and len(table) > 1:
            values = table[column].astype(float) * direction
            best[column] = values.idxmax()
    return ModelComparison(table=table, best=best, results=results, notes=notes)
