"""LGES: Latent variable Greedy Equivalence Search (seed 002, section 4.2, Algorithms 1-2).

LGES starts from the state of Definition 3 (floor(p/2) latents, complete
undirected latent graph, every latent -> every item), which can generate any
covariance a generalized N factor model (GNFM, Definition 2) can (Lemma 1),
and deletes edges while the maximum likelihood stays within a tolerance of
the current state's:

* Phase 1 (Algorithm 1) deletes latent -> observed edges with the operator
  O_LX (Definition 4): items that keep only k latents as parents, grouped by a
  disjoint set (line 16), reveal the latent groups and their pure children.
* Phase 2 (Algorithm 2) deletes latent-latent edges between groups with O_LL
  (Definition 5), like GES's backward phase, then removes edges inside groups.

Score changes are on the per-sample scale f = (log det Sigma + tr(Sigma^-1 S)) / 2.
Phase 1 computes them in closed form, as the likelihood ratio of the rank
constraint each candidate imposes (exact when the rest of the state is
saturated, which Definition 3's state nearly is); Phase 2 refits candidates
exactly with :mod:`latentsem.score`. A deletion is kept when its change passes
the tolerance (Alg. 1 lines 10 and 16, Alg. 2 line 13): a chi-square test on
2 N times the change by default, or the paper's delta = k log N / N
(section C.4) with ``criterion="delta"``. reports/benchmarks/lges_changes.md
records why and what each departure from the literal algorithm measured.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np

from ._validation import any_of, boolean, interval, none_or, options, validate_params
from .exceptions import LatentsemError
from .graph import consistent_extensions, dag_to_cpdag, pdag_to_dag, topological_order
from .model import Structure
from .score import Params, ScoreSpec, dag_start, efa_ml, fit_specs, params_from_phi, saturated_f, score_spec
from .screen import canonical_rank_statistic

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------ helpers
@functools.lru_cache(maxsize=None)
def _chi2_quantile(level, df):
    from scipy.stats import chi2

    return float(chi2.ppf(level, df))


def _factor_model_change(S, k):
    """f of the ML k-factor model of S minus the saturated f (per-sample scale)."""
    params = efa_ml(S, k)
    Sigma = params.Lambda @ params.Lambda.T + np.diag(params.psi)
    logdet = np.linalg.slogdet(Sigma)[1]
    return max(0.5 * (logdet + np.trace(np.linalg.solve(Sigma, S))) - saturated_f(S), 0.0)


# Score differences below this (per-sample scale) are optimizer noise, not evidence: structures that
# a rotation inside a group makes equivalent tie to about 1e-7 (reports/benchmarks/lges_changes.md
# section 5), and the last bits of such ties differ between BLAS builds.
TIE_TOLERANCE = 1e-6


def _best_of_ties(f, rng):
    """Index of the lowest score; among candidates within TIE_TOLERANCE of it, one drawn by ``rng``.

    A plain argmin picks among tied structures by rounding noise, so the result
    changes with the machine's BLAS; the first in candidate order would tie the
    choice to the item order (the first orientation found makes the group of the
    first items a sink). A seeded draw is reproducible and favours neither.
    """
    f = np.asarray(f, dtype=float)
    tied = np.flatnonzero(f <= f.min() + TIE_TOLERANCE)
    return int(tied[0] if tied.size == 1 else rng.choice(tied))


def _fit_silently(search, S, n, names):
    """``search.fit_covariance`` in a joblib worker, its warnings not printed there.

    A worker's warnings reach the terminal past the caller's filters (the CLI
    collects them); the search records them (``_warning_records``) and
    :func:`_reemit_warnings` raises them again in the caller.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return search.fit_covariance(S, n, names)


def _reemit_warnings(searches):
    """Re-emit, in this process, the warnings that searches fitted in workers recorded."""
    for search in searches:
        for category, message in getattr(search, "_warning_records", ()):
            warnings.warn(message, category, stacklevel=2)
    return searches


def _fit_in_workers(searches, S, n, names, workers):
    """Fit independent searches on ``workers`` joblib processes; their warnings raised here."""
    from joblib import Parallel, delayed

    return _reemit_warnings(Parallel(n_jobs=workers)(delayed(_fit_silently)(search, S, n, names)
                                                     for search in searches))


def _report_labelled(report, label, stage, done, total):
    """Pass a progress report on with the stage named after one of ``criterion="auto"``'s searches."""
    report(f"{stage} ({label})", done, total)


def n_free_parameters(structure):
    """Identified free parameters of a structure under DAG semantics.

    One per loading, item variance and latent edge; each latent's noise
    variance and its scale (a fixed loading) cancel; the latents of a group of
    g share children and neighbours (Definition 2 (ii)), so an orthogonal
    rotation among them leaves Sigma unchanged: g (g - 1) / 2 fewer.
    """
    loadings = sum(1 for e in structure.edges if e.source in structure.latent and e.target in structure.observed)
    latent_edges = sum(1 for e in structure.edges if e.type != "covariance" and e.target in structure.latent)
    rotations = sum(len(g) * (len(g) - 1) // 2 for g in structure.groups)
    return loadings + len(structure.observed) + latent_edges - rotations


class _DisjointSet:
    """Union-find over item indices (Alg. 1 line 16)."""

    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, items):
        items = list(items)
        root = self.find(items[0])
        for other in items[1:]:
            self.parent[self.find(other)] = root

    def groups(self, min_size=1):
        """Components with at least ``min_size`` members, ordered by their first item."""
        out = {}
        for x in sorted(self.parent):
            out.setdefault(self.find(x), []).append(x)
        return [members for _, members in sorted(out.items(), key=lambda kv: kv[1][0])
                if len(members) >= min_size]


@dataclass(frozen=True)
class Step:
    """One accepted deletion of the search (``history_`` entries)."""

    phase: int
    line: str
    description: str
    score_change: float
    tolerance: float

    def to_dict(self):
        return {"phase": self.phase, "line": self.line, "description": self.description,
                "score_change": self.score_change, "tolerance": self.tolerance}


# --------------------------------------------------------------- estimator
_PARAMETER_CONSTRAINTS = {
    "delta_scale": interval("float", 0, np.inf, False),
    "delta": none_or(interval("float", 0, np.inf)),
    "criterion": options("lr", "rmsea", "delta", "auto"),
    "alpha": none_or(interval("float", 0, 1, False, False)),
    "epsilon": interval("float", 0, np.inf),
    "max_group_size": none_or(interval("int", 1, np.inf)),
    "n_exact_phase2": interval("int", 1, np.inf),
    "refine": boolean(),
    "pair_restarts": boolean(),
    "regroup": boolean(),
    "min_loading": interval("float", 0, 1),
    "n_jobs": any_of(interval("int", 1, np.inf), (lambda v: v == -1 and not isinstance(v, bool), "-1")),
    "n_restarts": interval("int", 0, np.inf),
}


class LGES:
    """Latent variable Greedy Equivalence Search.

    Parameters
    ----------
    delta_scale : float, default 0.25
        k in the tolerance delta = k log(N) / N (paper section C.4).
    delta : float, optional
        An explicit tolerance on the per-sample log-likelihood scale; overrides
        ``delta_scale``. Giving it selects ``criterion="delta"``.
    criterion : {"auto", "lr", "rmsea", "delta"}, default "auto"
        How a deletion's score change is judged. ``"delta"`` is the paper's
        rule: keep it when the per-sample log-likelihood falls by at most delta.
        ``"lr"`` keeps it when 2 N times the fall is at most the (1 - alpha)
        quantile of chi-square with as many degrees of freedom as constraints the
        deletion adds. The literal delta ignores those degrees of freedom and
        rejects most true deletions at N = 1000 (reports/benchmarks/lges_synthetic.md).
        ``"rmsea"`` keeps a deletion when the RMSEA of the constraint it adds,
        sqrt(max(2 N change - df, 0) / (df N)), is at most ``epsilon``: with
        tens of thousands of respondents every exact constraint of a real
        questionnaire is rejected, and close fit is what applied researchers
        ask of a model. ``"auto"`` (the default) runs the search under ``"lr"``
        (at alpha = min(0.05, 1/N), 0.01 and 0.05, or at ``alpha`` when given)
        and under ``"rmsea"`` and keeps the model with the lowest BIC (Schwarz
        1978): one rule for small and large samples alike. On the synthetic
        benchmark it beats ``"lr"`` at N = 100-500; on Big Five ``"lr"`` finds
        no latent at all (reports/benchmarks/lges_changes.md sections 7 and 11).
        With ``n_jobs != 1`` the searches run side by side.
    alpha : float, optional
        Level of the ``"lr"`` test; default 1/N, which shrinks with N as the
        paper's delta does (consistency).
    max_group_size : int or None, default 3
        Largest latent group Phase 1 looks for: Algorithm 1 raises k while
        k <= |X_t| / 2 and scores every (k+1)-subset of X_t, which explodes
        combinatorially on 30-50 items; None runs the loop as published.
    n_exact_phase2 : int, default 8
        Phase-2 candidates refitted exactly per round; when a round has more,
        they are shortlisted by their GES local-score change on the fitted
        latent covariance.
    refine : bool, default True
        After Phase 2, add back item <- group edges whose deletion the
        tolerance rejects on the final latent graph, then delete passing ones
        again (not in the paper; reports/benchmarks/lges_changes.md).
    pair_restarts : bool, default True
        Not in the paper. Lines 13-16 at k = 1 run before any two-latent group
        is looked for, and two children of a two-latent group whose loadings
        are nearly proportional pass the rank-1 test; the rest of the search is
        then built around a false latent. When True, the search is rerun
        without each two-item cluster of line 16 at k = 1 (greedily, one more
        pair per round) and the final model with the lowest BIC is kept
        (reports/benchmarks/lges_changes.md section 8).
    regroup : bool, default True
        Not in the paper. After the search, a greedy BIC search over the
        clustering (which groups cause each item, and how many latents each
        group has), started from every search's model: an item gains, loses or
        changes a group, two items split off into a new latent, a group is
        resized or two groups merge (:mod:`latentsem.regroup`). Phase 2 reruns
        on each clustering it ends at, and the lowest BIC is kept if it is lower
        than the search's (reports/benchmarks/lges_changes.md section 12).
    min_loading : float, default 0.2
        An edge is added back only when the group's standardized loading on
        the item reaches this (below 0.2 it explains under 4% of the item's
        variance): with tens of thousands of respondents such loadings are
        significant, and latents with many of them cannot be interpreted
        (Big Five: 25 added edges and mean purity 0.42 without it, about 0.77 with it).
    epsilon : float, default 0.05
        RMSEA bound of ``criterion="rmsea"`` (0.05: "close fit").
    n_jobs : int, default 1
        Worker processes (joblib) for the loops the paper marks "in parallel"
        (Alg. 1 lines 5, 6, 13; Alg. 2 lines 5, 6, 9). Results do not depend on it.
    random_state : int, optional
        Seed of the random restarts of the exact fits.
    n_restarts : int, default 2
        Random restarts of the Phase-2 model fit (local optima, REFERENCE section 8).
    progress : bool or callable, default False
        Report progress: True draws a bar on stderr; a callable receives
        ``(stage: str, done: int, total: int)``.

    Attributes
    ----------
    model_ : Structure
        The learned structure: latent -> item edges and a CPDAG among latents,
        latents named L1, L2, ... and groups set.
    log_likelihood_ : float
        The paper's score L = -N f of ``model_`` (equation 3).
    bic_ : float
        BIC of ``model_`` on the standardized data: -2 L + k log N, with k its
        identified free parameters (:func:`n_free_parameters`); the constant
        N p log(2 pi) is left out, so compare it only across models of the same data.
    criterion_bic_ : dict
        With ``criterion="auto"``: the BIC each search's model reached, keyed
        "lr", "lr (alpha = 0.01)", "lr (alpha = 0.05)" and "rmsea" (the lowest
        one is kept); otherwise ``{criterion_: bic_}``.
    delta_ : float
        The paper's tolerance delta (used when ``criterion="delta"``).
    alpha_ : float
        The level of the likelihood-ratio rule (used when ``criterion="lr"``).
    n_samples_ : int
    history_ : list of Step
        Every accepted deletion with its score change (then the restarts of
        ``pair_restarts`` that lowered the BIC and, as phase 3, regroup's moves,
        its Phase-2 rerun and the BIC it reached).
    excluded_pairs_ : list of (str, str)
        The two-item clusters that the kept search was not allowed to form at
        k = 1 (``pair_restarts``); empty when the first search was kept.
    runtime_ : float
        Seconds spent in ``fit``.
    n_candidates_ : int
        Candidate structures scored.
    warnings_ : list of str
        Convergence and numerical warnings raised during the search (each is
        also emitted once as a Python warning).
    """

    def __init__(self, delta_scale=0.25, delta=None, *, criterion="auto", alpha=None, epsilon=0.05,
                 max_group_size=3,
                 n_exact_phase2=8, refine=True, pair_restarts=True, regroup=True, min_loading=0.2, n_jobs=1,
                 random_state=None, n_restarts=2, progress=False):
        self.delta_scale = delta_scale
        self.delta = delta
        self.criterion = criterion
        self.alpha = alpha
        self.epsilon = epsilon
        self.max_group_size = max_group_size
        self.n_exact_phase2 = n_exact_phase2
        self.refine = refine
        self.pair_restarts = pair_restarts
        self.regroup = regroup
        self.min_loading = min_loading
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.n_restarts = n_restarts
        self.progress = progress

    # ------------------------------------------------------------ validation
    def _validate_params(self):
        validate_params(self, _PARAMETER_CONSTRAINTS)

    # ------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Learn the structure from item data.

        Parameters
        ----------
        X : pandas DataFrame, ItemData or array of shape (N, p)
            Complete item data; columns become the observed variable names.
            The data are standardized first (paper C.4): S is the correlation
            matrix with divisor N.
        y : ignored

        Returns
        -------
        self
        """
        from .data import ItemData, items_from_frame

        data = X if isinstance(X, ItemData) else items_from_frame(X)
        return self.fit_covariance(data.correlation(), data.n, list(data.columns))

    def fit_covariance(self, S, n, names=None):
        """Learn the structure from a covariance matrix ``S`` of ``n`` rows.

        ``S`` is standardized to a correlation matrix first (paper C.4).
        """
        self._validate_params()
        started = time.perf_counter()
        self._search_models = []
        if self.criterion == "auto" and self.delta is None:
            self._fit_best_criterion(S, n, names)
        else:
            self._search(S, n, names)
            if self.pair_restarts:
                self._restart_without_pairs(S, n, names)
        if self.regroup:
            self._regroup(list(self.model_.observed))
        self.runtime_ = time.perf_counter() - started
        self.model_ = self.model_.replace(metadata={**self.model_.metadata, "runtime_s": self.runtime_})
        return self

    def _search(self, S, n, names):
        """Algorithms 1 and 2 once, with the two-item clusters in ``_excluded_pairs`` not formed at k = 1."""
        started = time.perf_counter()
        S = np.asarray(S, dtype=float)
        if S.ndim != 2 or S.shape[0] != S.shape[1]:
            raise LatentsemError(f"S must be a square covariance matrix; got shape {S.shape}.")
        p = S.shape[0]
        if p < 4:
            raise LatentsemError(f"LGES needs at least 4 items (it starts with floor(p/2) latents); got {p}.")
        if not (isinstance(n, (int, np.integer)) and n > p):
            raise LatentsemError(f"The sample size n must be an integer larger than the number of items ({p}); got {n!r}.")
        names = list(names) if names is not None else [f"X{i + 1}" for i in range(p)]
        d = np.sqrt(np.diag(S))
        self._S = S / np.outer(d, d)
        self._Omega = np.linalg.inv(self._S)
        self._sub_cache = {}
        # Closed-form statistics depend on S only: pair_restarts' reruns share them.
        self._memo = getattr(self, "_shared_memo", None) or {}
        self._parent_options = {}
        self.n_samples_ = int(n)
        self.delta_ = float(self.delta) if self.delta is not None else self.delta_scale * math.log(n) / n
        self.alpha_ = float(self.alpha) if self.alpha is not None else min(0.05, 1.0 / n)
        self.criterion_ = "delta" if self.delta is not None else self.criterion
        self.history_ = []
        self.n_candidates_ = 0
        self._pair_clusters = []
        self._excluded_pairs = getattr(self, "_excluded_pairs", frozenset())
        self.excluded_pairs_ = [(names[a], names[b]) for a, b in sorted(self._excluded_pairs)]
        self._rng = np.random.default_rng(self.random_state)
        # Its own stream, so that breaking a tie leaves the restarts' draws as they were.
        self._tie_rng = np.random.default_rng(self._rng.bit_generator.seed_seq.spawn(1)[0])

        from .progress import close_progress, make_progress

        self._report = make_progress(self.progress)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mask, groups = self._phase1(p)
                structure, params, f = self._phase2(mask, groups, names)
        finally:
            close_progress(self._report)
        self._record_warnings(caught)
        self.model_ = structure.replace(metadata={
            "n_samples": self.n_samples_, "delta": self.delta_,
            "log_likelihood": -self.n_samples_ * f,
        })
        self._params = params
        self.log_likelihood_ = -self.n_samples_ * f
        self.bic_ = self._bic_of(structure, f)
        self.criterion_bic_ = {self.criterion_: self.bic_}
        self.runtime_ = time.perf_counter() - started
        self.model_ = self.model_.replace(metadata={**self.model_.metadata, "runtime_s": self.runtime_})
        return self

    def _restart_without_pairs(self, S, n, names):
        """``pair_restarts``: rerun the search without a k = 1 two-item cluster while that lowers the BIC.

        Not in the paper. Each round reruns the whole search once per two-item
        cluster that the current model formed at line 16 with k = 1, that
        pair excluded on top of the pairs already excluded, and keeps the
        lowest BIC if it beats the current model (BIC is GES's own score,
        Chickering 2002). A true single latent's pair is rarely worth
        excluding: without it its items cannot be explained as well.
        """
        tried = set()
        while True:
            options = [self._excluded_pairs | {pair} for pair in self._pair_clusters]
            options = [option for option in dict.fromkeys(options) if option not in tried]
            if not options:
                return
            tried.update(options)
            runs = self._run_excluding(options, S, n, names)
            best = min(runs, key=lambda run: run.bic_)                 # first of equals: deterministic
            if best.bic_ >= self.bic_:
                return
            before = self.bic_
            history = self.history_
            self.__dict__.update({k: v for k, v in vars(best).items() if k.endswith("_") or k.startswith("_")})
            restarts = [step for step in history if step.line == "restart"]
            pair = ", ".join(f"{a} and {b}" for a, b in best.excluded_pairs_)
            self.history_ = best.history_ + restarts + [Step(
                1, "restart", f"search rerun without the k = 1 cluster(s) of {pair}: BIC {before:.1f} -> {best.bic_:.1f}",
                float((best.bic_ - before) / (2 * self.n_samples_)), 0.0)]

    def _run_excluding(self, options, S, n, names):
        """One search per set of excluded pairs (joblib workers when ``n_jobs != 1``)."""
        params = {**self.get_params(), "pair_restarts": False, "regroup": False, "progress": False, "n_jobs": 1}
        searches = []
        for option in options:
            search = LGES(**params)
            search._excluded_pairs = frozenset(option)
            search._shared_memo = self._memo
            searches.append(search)
        workers = 1 if self.n_jobs == 1 else min(len(searches), self._max_workers())
        if workers == 1:
            return [search.fit_covariance(S, n, names) for search in searches]
        return _fit_in_workers(searches, S, n, names, workers)

    # Levels of the extra "lr" searches of criterion="auto" (lges_changes.md section 11).
    _AUTO_ALPHAS = (0.01, 0.05)

    def _auto_searches(self, n):
        """criterion="auto": {label: LGES} of the searches whose lowest-BIC model is kept.

        The lr test at the default level min(0.05, 1/N), at 0.01 and at 0.05,
        and the close-fit rule; an explicit ``alpha`` replaces the three levels.
        """
        params = {**self.get_params(), "criterion": "lr", "regroup": False}
        default = self.alpha if self.alpha is not None else min(0.05, 1.0 / n)
        searches = {"lr": LGES(**{**params, "alpha": default})}
        if self.alpha is None:
            for alpha in self._AUTO_ALPHAS:
                if not math.isclose(alpha, default):
                    searches[f"lr (alpha = {alpha:g})"] = LGES(**{**params, "alpha": alpha})
        searches["rmsea"] = LGES(**{**params, "criterion": "rmsea"})
        return searches

    def _fit_best_criterion(self, S, n, names):
        """``criterion="auto"``: one search per rule, the model with the lowest BIC kept.

        The exact-fit test (``"lr"``) suits small samples and the close-fit rule
        (``"rmsea"``) large ones, where every exact constraint of a real
        questionnaire is rejected; BIC, the score GES itself uses (Chickering
        2002), chooses between the models instead of a sample-size switch. At
        small N the lr test at alpha = 1/N keeps too few latents and BIC alone
        cannot repair that, so the lr test also runs at 0.01 and 0.05.
        """
        fits = self._auto_searches(n)
        searches = list(fits.values())
        if self.n_jobs != 1 and not self.progress:
            # The searches are independent: one worker each (a progress reporter cannot cross processes).
            for search in searches:
                search.n_jobs = 1
            searches = _fit_in_workers(searches, S, n, names, min(len(searches), self._max_workers()))
        else:
            searches = self._run_labelled(fits, S, n, names)
        fits = dict(zip(fits, searches))
        best = min(fits.values(), key=lambda est: est.bic_)
        self.__dict__.update({k: v for k, v in vars(best).items() if k.endswith("_") or k.startswith("_")})
        self.criterion_bic_ = {label: est.bic_ for label, est in fits.items()}
        # regroup starts from every search's model, best first.
        self._search_models = [est.model_ for est in sorted(fits.values(), key=lambda est: est.bic_)]
        self.n_candidates_ = sum(est.n_candidates_ for est in fits.values())
        self.model_ = self.model_.replace(metadata={**self.model_.metadata, "criterion_bic": self.criterion_bic_})
        return self

    def _regroup(self, names):
        """``regroup``: a BIC search over the model's clustering, then Phase 2 again; kept if the BIC falls.

        Not in the paper (:mod:`latentsem.regroup`, lges_changes.md section 12).
        Phase 2 reruns on the new clustering from its saturated latent graph
        (Alg. 2 line 3), with the final steps as in the search.
        """
        from .progress import close_progress, make_progress
        from .regroup import Clustering, regroup

        structure = self.model_
        if not structure.groups:
            return
        starts = {}
        for model in [structure] + getattr(self, "_search_models", []):
            if model.groups:
                clustering = Clustering.from_structure(model)
                starts.setdefault(clustering.key(), clustering)
        report = make_progress(self.progress)
        self._report = functools.partial(_report_labelled, report, "regroup")
        history = self.history_
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ends, n_candidates = regroup(self._S, self.n_samples_, list(starts.values()), self._fit,
                                             n_restarts=self.n_restarts, min_loading=self.min_loading,
                                             random_state=self._rng)
                finals = []
                for clustering, steps, _ in ends:
                    self._parent_options = {}
                    self.history_ = []                                 # the rerun's own Phase-2 steps
                    mask, groups = clustering.expand()
                    new, params, f = self._phase2(mask, groups, names)
                    finals.append((self._bic_of(new, f), steps, self.history_, new, params, f))
                bic, steps, rerun, new, params, f = min(finals, key=lambda t: t[0])
        finally:
            self.history_ = history
            close_progress(report)
        self.n_candidates_ += n_candidates
        self._record_warnings(caught, previous=getattr(self, "_warning_records", []))
        if bic >= self.bic_ - 1e-6:
            return
        scale = 2 * self.n_samples_
        # The search's steps, regroup's moves, the rerun's Phase-2 deletions (phase 3), then the BIC it reached.
        self.history_ = history + [Step(3, "regroup", description, float(change / scale), 0.0)
                                   for description, change in steps]
        self.history_ += [Step(3, f"regroup: {step.line}", step.description, step.score_change, step.tolerance)
                          for step in rerun]
        self.history_.append(Step(3, "regroup", f"Phase 2 rerun on the new clustering: BIC {self.bic_:.1f} -> {bic:.1f}",
                                  float((bic - self.bic_) / scale), 0.0))
        self.model_ = new.replace(metadata={**structure.metadata, "log_likelihood": -self.n_samples_ * f})
        self._params = params
        self.log_likelihood_ = -self.n_samples_ * f
        self.bic_ = bic

    def _record_warnings(self, caught, previous=()):
        """Record caught warnings on the estimator (STYLE convention 6) after ``previous``; re-emit each once."""
        records = list(dict.fromkeys((w.category, str(w.message)) for w in caught))
        self._warning_records = list(dict.fromkeys(list(previous) + records))
        self.warnings_ = [f"{category.__name__}: {message}" for category, message in self._warning_records]
        for category, message in records:
            warnings.warn(message, category, stacklevel=4)

    def _bic_of(self, structure, f):
        """BIC = -2 L + k log N of a structure whose per-sample score is f (L = -N f)."""
        return 2 * self.n_samples_ * f + n_free_parameters(structure) * math.log(self.n_samples_)

    def _run_labelled(self, searches, S, n, names):
        """Run the searches ({label: LGES}) one after the other, their progress stages named by label."""
        from .progress import close_progress, make_progress

        report = make_progress(self.progress)
        try:
            for label, search in searches.items():
                search.progress = functools.partial(_report_labelled, report, label)
                search.fit_covariance(S, n, names)
        finally:
            close_progress(report)
        return list(searches.values())

    def get_params(self, deep=True):
        """The constructor's parameters (scikit-learn convention)."""
        import inspect

        names = [p for p in inspect.signature(LGES.__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    # ---------------------------------------------------------------- scoring
    def _fit(self, masks, parents, starts, max_iter=200):
        """Score candidates (batched; split over joblib workers when n_jobs > 1)."""
        masks = np.asarray(masks, dtype=bool)
        K = masks.shape[0]
        parents = np.broadcast_to(np.asarray(parents, dtype=bool), (K,) + parents.shape[-2:])
        n_jobs = self._n_workers(K)
        if n_jobs == 1:
            f, params, _, _ = fit_specs(masks, parents, self._S, starts, max_iter=max_iter)
            return f, params
        from joblib import Parallel, delayed

        chunks = np.array_split(np.arange(K), n_jobs)
        results = Parallel(n_jobs=n_jobs)(
            delayed(fit_specs)(masks[c], parents[c], self._S, [starts[i] for i in c], max_iter=max_iter)
            for c in chunks if c.size
        )
        f = np.concatenate([r[0] for r in results])
        params = [p for r in results for p in r[1]]
        return f, params

    def _n_workers(self, K):
        if self.n_jobs == 1 or K < 8:
            return 1
        return max(1, min(K // 4, self._max_workers()))

    def _max_workers(self):
        """Worker processes that ``n_jobs`` allows (-1: every core)."""
        return (os.cpu_count() or 1) if self.n_jobs == -1 else self.n_jobs

    # ------------------------------------------------------------- tolerance
    def _accepts(self, change, df):
        """Alg. 1 lines 10/16, Alg. 2 line 13: is a deletion within tolerance?

        ``criterion="delta"`` is the paper's rule, change <= delta. ``"lr"``
        keeps a deletion when its likelihood-ratio statistic 2 N change is at
        most the (1 - alpha) quantile of chi-square with ``df`` degrees of
        freedom (the constraints the deletion adds): the literal delta ignores
        df, and rejects most true deletions (REFERENCE.md section 8).
        """
        if df <= 0:  # the constraint holds trivially (too few other items): nothing was tested
            return False
        if self.criterion_ == "delta":
            return change <= self.delta_
        return change <= self._tolerance_of(df)

    # ------------------------------------------------------ rank statistics
    def _rank_change(self, J, r, within=None):
        """Score drop of "items J reach the other items through r latents only".

        In a saturated state that constraint is rank(S[J, rest]) <= r, whose
        maximum likelihood is closed-form (Anderson 1951): the drop in f is
        -1/2 sum_{i>r} log(1 - rho_i^2) over the canonical correlations rho of
        J with the rest. With Omega = S^-1, 1/(1 - rho_i^2) are the eigenvalues
        of S_JJ Omega_JJ, so the cost is one small eigenproblem per candidate.
        The initial state of Definition 3 is nearly saturated, and on our
        simulated graphs this equals the exact refit's drop to within local-optimum
        noise (Spearman 0.98), at microseconds instead of seconds per candidate.

        ``within`` restricts the variables to a subset (the rest is then the
        subset minus J). Returns (change, df) with df = (|J| - r)(|rest| - r).
        """
        J = list(J)
        key = ("rank", tuple(J), r, None if within is None else tuple(within))
        if key in self._memo:
            return self._memo[key]
        if within is None:
            S, Omega, n_vars, idx = self._S, self._Omega, self._S.shape[0], J
        else:
            within = tuple(within)
            S, Omega = self._sub_inverse(within)
            pos = {v: i for i, v in enumerate(within)}
            idx, n_vars = [pos[v] for v in J], len(within)
        change = canonical_rank_statistic(S, idx, r, precision=Omega)
        self._memo[key] = change, (len(J) - r) * (n_vars - len(J) - r)
        return self._memo[key]

    def _sub_inverse(self, within):
        """S and S^-1 restricted to the variables ``within`` (cached)."""
        if within not in self._sub_cache:
            S = self._S[np.ix_(within, within)]
            self._sub_cache[within] = (S, np.linalg.inv(S))
        return self._sub_cache[within]

    def _cluster_change(self, J, k):
        """Drop of "items J are caused by k latents only, the rest saturated" (Alg. 1 lines 14-15).

        Two parts, each a likelihood ratio: J reaches the rest through k
        dimensions (:meth:`_rank_change`), and J's covariance given the rest,
        inv(Omega_JJ), is a k-factor model (ML factor analysis, as factanal).
        The second part is vacuous for the (k+1)-subsets of line 13 but not for
        the merged components of line 16: two groups whose items reach a few
        remaining items through one common cause pass the first part together.
        """
        key = ("cluster", tuple(J), k)
        if key in self._memo:
            return self._memo[key]
        change, df = self._rank_change(J, k)
        within_df = ((len(J) - k) ** 2 - (len(J) + k)) // 2
        if within_df > 0:
            partial = np.linalg.inv(self._Omega[np.ix_(J, J)])
            change += _factor_model_change(partial, k)
            df += within_df
        self._memo[key] = change, df
        return change, df

    def _independence_change(self, J):
        """Drop of "items J have no latent parent", the rest saturated (the 0-factor model).

        J's items are then independent of one another and of every other item;
        with S a correlation matrix and Omega = S^-1 the likelihood ratio is
        closed-form, 1/2 log det Omega_JJ (det S = det S_rest / det Omega_JJ).
        Returns (change, df) with df = |J|(|J| - 1)/2 + |J| (p - |J|).
        """
        J = list(J)
        change = 0.5 * float(np.linalg.slogdet(self._Omega[np.ix_(J, J)])[1])
        n_rest = self._S.shape[0] - len(J)
        return max(change, 0.0), len(J) * (len(J) - 1) // 2 + len(J) * n_rest

    def _item_change(self, C, j, r):
        """Drop of "item j keeps only the latents of pure children C" (a nested LR).

        rank(S[C + j, rest]) <= r' against rank(S[C, rest]) <= r', with the same
        rest (every item but C and j): the first implies the second, so the
        difference of the two statistics is a likelihood ratio >= 0, with
        |rest| - r' degrees of freedom. (Adding the factor-model part of
        :meth:`_cluster_change` to both sides lowered F1 on the synthetic
        graphs: reports/benchmarks/lges_changes.md.) r' is
        the smallest rank <= r that C's own model passes: when C's latents reach
        the other items through fewer dimensions than r (a two-latent group with
        one common cause), an item that is not their child can still fit in the
        spare dimension, while a true child adds none.
        """
        within = tuple(i for i in range(self._S.shape[0]) if i != j)
        for r_C in range(1, r + 1):
            base, base_df = self._rank_change(C, r_C, within=within)
            if self._accepts(base, base_df):
                break
        full, full_df = self._rank_change(list(C) + [j], r_C)
        return full - base, full_df - base_df

    # ---------------------------------------------------------------- phase 1
    def _phase1(self, p):
        """Algorithm 1 on the state of Definition 3 (floor(p/2) latents).

        Returns the loading mask over the latents found (L_d) and the groups P.
        """
        m = p // 2
        mask = np.ones((p, m), dtype=bool)                            # line 3 (Definition 3)
        found, P, clusters_of = [], [], {}
        X_t = self._drop_unrelated_items(mask, list(range(p)))
        k = 1
        k_max = self.max_group_size or p
        while k <= len(X_t) / 2 and k <= k_max:                        # line 4
            self._report("Phase 1", k - 1, p // 2)
            X_t = self._phase1_impure(mask, found, clusters_of, X_t, k)           # lines 5-11
            X_t = self._phase1_clusters(mask, found, clusters_of, X_t, k, P, m)   # lines 12-20
            k += 1                                                     # line 21
        self._split_shared_pairs(mask, found, clusters_of, P, m)
        self._assign_remaining(mask, found, clusters_of, X_t, P)
        keep = list(found)                                             # line 22: drop L \ L_d
        groups = [[keep.index(j) for j in g] for g in P]
        return mask[:, keep], groups

    def _drop_unrelated_items(self, mask, X_t):
        """Items uncorrelated with all others lose every latent parent before line 4.

        Not in the paper. Such an item passes every rank test trivially (rank 0
        is at most any r), so lines 5-11 would give it the first latents they
        try, with loadings near zero. Its "no latent parent" deletion
        (:meth:`_independence_change`) is tested against the initial state; the
        item then stays without a latent.
        """
        kept = []
        for j in X_t:
            change, df = self._independence_change([j])
            self.n_candidates_ += 1
            if self._accepts(change, df):
                mask[j] = False
                self.history_.append(Step(1, "before l.4", f"item {j} has no latent parent",
                                          float(change), self._tolerance_of(df)))
            else:
                kept.append(j)
        return kept

    def _no_factor_change(self, X_prime):
        """Drop of "X' has no latent parent" from "X' caused by one latent only" (a nested LR).

        Not in the paper. When X' shares no latent, rank(S[X', rest]) is 0 and
        the rank-1 test of lines 14-16 passes trivially, so a cluster of
        unrelated items would get a latent with near-zero loadings. The
        0-factor model is nested in the 1-factor one (zero loadings), so the
        difference of the two statistics is a likelihood ratio with the
        difference of their degrees of freedom.
        """
        zero, zero_df = self._independence_change(X_prime)
        one, one_df = self._cluster_change(X_prime, 1)
        return max(zero - one, 0.0), zero_df - one_df

    def _phase1_impure(self, mask, found, clusters_of, X_t, k):
        """Alg. 1 lines 5-11: items whose parents are a size-k subset of found latents.

        The drop of "item j keeps only L_i" is the rank statistic of j joined to
        L_i's pure children C (rank <= k) minus that of C alone, with the
        difference of their degrees of freedom.
        """
        cands = []
        for L_i in itertools.combinations(found, k):                  # line 5 (in parallel)
            C = sorted({i for lat in L_i for i in clusters_of[lat]})  # members of a group share children
            for j in X_t:                                              # line 6 (in parallel)
                change, df = self._item_change(C, j, k)                # lines 7-8
                cands.append((j, L_i, change, df))
        self.n_candidates_ += len(cands)
        passing = {}
        for j, L_i, change, df in cands:                               # line 10
            if self._accepts(change, df):
                passing.setdefault(j, []).append((change, list(L_i), df))
        for j, options in passing.items():                             # line 11: O_LX(S, L \ L_i, {X_j})
            self._keep_parents(mask, j, options, "Alg.1 l.10-11")
        return [j for j in X_t if j not in passing]

    def _keep_parents(self, mask, j, options, line):
        """Item j keeps the latents of its passing option(s) (Alg. 1 line 11).

        When several parent sets of the same size pass, the choice is left to
        the final model (:meth:`_resolve_parents`): in the Phase-1 state the
        latent covariance is unrestricted, and an item can fit a wrong set of
        latents that explains the other items through the same dimensions as its
        true parents; item j keeps the union of the options until then.
        """
        change, lats, df = min(options)
        mask[j] = False
        for _, option, _ in options:
            mask[j, option] = True
        if len(options) > 1:
            self._parent_options[j] = [option for _, option, _ in sorted(options)]
        described = " or ".join(str(option) for _, option, _ in sorted(options))
        self.history_.append(Step(1, line, f"item {j} keeps latents {described} only",
                                  float(change), self._tolerance_of(df)))

    def _split_shared_pairs(self, mask, found, clusters_of, P, m):
        """Items that Phase 1 gave two single latents g, h may be a two-latent group with g's children.

        Not in the paper. Lines 13-16 run at k = 1 before any two-latent group is
        looked for, and a pair of a two-latent group's children can pass the
        rank-1 test (its violation is diluted over all other items). The rest of
        the group, Q, then passes lines 5-11 at k = 2 with the pair's latent g and
        some other latent h. That state says the children of g, of h and Q, U,
        reach the other items through 2 latents; it is tested against 3 (both
        :meth:`_cluster_change` on the same variables, so the difference is a
        nested likelihood ratio, with Q's violations added up instead of diluted
        item by item). When the tolerance rejects it, Q and the children of one
        of g, h become a two-latent group {that latent, a fresh one} and Q loses
        the other: of the two sides that pass "caused by 2 latents only", the one
        with the smaller change relative to its tolerance.
        """
        for g, h in itertools.combinations(range(len(P)), 2):
            if len(P[g]) != 1 or len(P[h]) != 1 or m == len(found):
                continue
            C_g, C_h = clusters_of[P[g][0]], clusters_of[P[h][0]]
            both = sorted(P[g] + P[h])
            Q = [j for j in range(mask.shape[0]) if j not in C_g and j not in C_h
                 and list(np.flatnonzero(mask[j])) == both]
            if not Q:
                continue
            change, df = self._fewer_latents_change(sorted(set(C_g) | set(C_h) | set(Q)), 2)
            if self._accepts(change, df):
                continue
            sides = []                                                 # which single latent Q joins
            for a, C_a in ((g, C_g), (h, C_h)):
                group = sorted(set(C_a) | set(Q))
                fit, fit_df = self._cluster_change(group, 2)
                if self._accepts(fit, fit_df):
                    sides.append((fit / self._tolerance_of(fit_df), a, group))
            if not sides:
                continue
            _, a, group = min(sides)
            lat_a, lat_other = P[a][0], P[h if a == g else g][0]
            fresh = next(j for j in range(m) if j not in found)
            mask[group] = False
            mask[np.ix_(group, [lat_a, fresh])] = True
            # Definition 2 (ii): an item that lat_a caused is caused by its whole group now.
            mask[mask[:, lat_a], fresh] = True
            for options in self._parent_options.values():
                for option in options:
                    if lat_a in option and fresh not in option:
                        option.append(fresh)
            found.append(fresh)
            P[a] = [lat_a, fresh]
            clusters_of[lat_a] = clusters_of[fresh] = group
            self.history_.append(Step(1, "after l.21", f"items {group} caused by latents {P[a]} only "
                                      f"(their union with latent {lat_other}'s children needs 3 latents)",
                                      float(change), self._tolerance_of(df)))

    def _fewer_latents_change(self, U, r):
        """Drop of "items U caused by r latents only" from "... by r + 1 latents" (nested, same variables)."""
        fewer, fewer_df = self._cluster_change(U, r)
        more, more_df = self._cluster_change(U, r + 1)
        return max(fewer - more, 0.0), fewer_df - more_df

    def _assign_remaining(self, mask, found, clusters_of, X_t, P):
        """Items left in X_t after line 21: parents = the smallest passing union of groups.

        Not in the paper. Algorithm 1 stops when k > |X_t| / 2, so an impure item
        whose parents span more latents than that (a two-latent group plus a
        single latent needs k = 3) keeps an edge from every found latent, all
        but a few of them false. Lines 5-11 are continued for those items over
        unions of whole groups (Definition 2 (ii): a relation to a group applies
        to all its members), smallest union first; an item no union explains
        keeps every found latent, as the paper's Phase 1 leaves it.
        """
        if not X_t or len(P) < 1:
            return
        unions = [u for r in range(1, len(P) + 1) for u in itertools.combinations(range(len(P)), r)]
        unions.sort(key=lambda u: sum(len(P[g]) for g in u))          # fewest latents first
        for j in list(X_t):
            options = []
            for u in unions:
                lats = [lat for g in u for lat in P[g]]
                if options and len(lats) > len(options[0][1]):
                    break
                C = sorted({i for lat in lats for i in clusters_of[lat]})
                change, df = self._item_change(C, j, len(lats))
                self.n_candidates_ += 1
                if self._accepts(change, df):
                    options.append((change, lats, df))
            if options:
                self._keep_parents(mask, j, options, "after l.21")
                X_t.remove(j)

    def _phase1_clusters(self, mask, found, clusters_of, X_t, k, P, m):
        """Alg. 1 lines 12-20: (k+1)-subsets of X_t caused by k fresh latents only."""
        if m - len(found) < k or len(X_t) < k + 1:
            return X_t
        accepted = []
        for X_j in itertools.combinations(X_t, k + 1):                 # line 13 (in parallel)
            if k == 1 and X_j in self._excluded_pairs:                 # pair_restarts
                continue
            change, df = self._cluster_change(X_j, k)                  # lines 14-15
            if self._accepts(change, df):                              # line 16
                accepted.append((change, X_j))
        self.n_candidates_ += math.comb(len(X_t), k + 1)
        clusters = self._verified_union(accepted, k)
        for X_prime in clusters.groups(min_size=k + 1):                # line 17
            fresh = [j for j in range(m) if j not in found]
            if len(fresh) < k:
                break
            if k == 1:                                                 # before line 18: a 0-factor test
                change, df = self._no_factor_change(X_prime)
                if self._accepts(change, df):
                    mask[X_prime] = False
                    X_t = [j for j in X_t if j not in X_prime]
                    self.history_.append(Step(1, "Alg.1 l.17", f"items {X_prime} have no latent parent",
                                              float(change), self._tolerance_of(df)))
                    continue
            L_new = fresh[:k]                                          # line 18
            mask[X_prime] = False                                      # line 19
            mask[np.ix_(X_prime, L_new)] = True
            found += L_new                                             # line 20
            for lat in L_new:
                clusters_of[lat] = list(X_prime)
            X_t = [j for j in X_t if j not in X_prime]
            P.append(L_new)
            if k == 1 and len(X_prime) == 2:
                self._pair_clusters.append(tuple(sorted(X_prime)))
            change, df = self._cluster_change(X_prime, k)
            self.history_.append(Step(1, "Alg.1 l.16-20", f"items {X_prime} caused by new latents {L_new} only",
                                      float(change), self._tolerance_of(df)))
        return X_t

    def _verified_union(self, accepted, k):
        """Line 16's disjoint set, merging two components only when their union passes too.

        The literal union-find chains: subsets that pass one by one can join
        items of different groups into one cluster whose own rank constraint
        fails badly. Accepted subsets are taken best first, and two components
        are merged only if the merged item set still satisfies the tolerance
        for "caused by k latents only".
        """
        clusters = _DisjointSet()
        members = {}
        for change, X_j in sorted(accepted):
            roots = {clusters.find(x) for x in X_j}
            union = sorted(set(X_j).union(*(members.get(r, {r}) for r in roots)))
            if len(roots) > 1 or len(union) > len(X_j):
                merged_change, merged_df = self._cluster_change(union, k)
                if not self._accepts(merged_change, merged_df):
                    continue
            clusters.union(X_j)
            for r in roots:
                members.pop(r, None)
            members[clusters.find(X_j[0])] = set(union)
        return clusters

    def _tolerance_of(self, df):
        """The tolerance on the per-sample scale that a deletion with ``df`` faces."""
        if self.criterion_ == "delta":
            return self.delta_
        df = max(int(df), 1)
        if self.criterion_ == "rmsea":
            return df * (1 + self.n_samples_ * self.epsilon**2) / (2 * self.n_samples_)
        return _chi2_quantile(1 - self.alpha_, df) / (2 * self.n_samples_)

    # ---------------------------------------------------------------- phase 2
    def _phase2(self, mask, groups, names):
        """Algorithm 2 over latent groups, then deletion of edges inside groups.

        Scores are exact ML refits (:mod:`latentsem.score`) of the latent DAG
        that a consistent extension of each candidate CPDAG gives, warm-started by
        regressing the current latent covariance onto the new DAG.
        """
        g = len(groups)
        if g == 0:
            return self._no_latent_model(mask, names)
        D = np.zeros((g, g), dtype=bool)                               # line 3: S = S_phase1,
        U = ~np.eye(g, dtype=bool)                                     # complete among groups
        params, f_cur = self._fit_phase1_model(mask, groups)
        order_cur = [lat for grp in groups for lat in grp]
        n_edges = int(U.sum() // 2 + D.sum())
        while g > 1:                                                   # line 4
            self._report("Phase 2", n_edges - int(U.sum() // 2 + D.sum()), n_edges)
            cands = self._ll_candidates(D, U)                          # lines 5-10
            if not cands:
                break
            cands = self._shortlist(cands, D, U, params, order_cur, groups)
            masks, parents, starts, orders = [], [], [], []
            for _, Dn, Un in cands:
                lat_mask, lat_parents, order = self._latent_dag(mask, groups, Dn, Un)
                masks.append(lat_mask)
                parents.append(lat_parents)
                orders.append(order)
                perm = [order_cur.index(lat) for lat in order]
                starts.append(dag_start(self._reorder(params, perm), lat_parents))
            f, fitted = self._fit(np.stack(masks), np.stack(parents), starts)   # line 11
            best = _best_of_ties(f, self._tie_rng)                     # line 12
            (i, j, Hk), Dn, Un = cands[best]
            change = float(f[best] - f_cur)
            df = len(groups[i]) * len(groups[j])
            if not self._accepts(change, df):                          # line 13
                break
            self.history_.append(Step(2, "Alg.2 l.13", f"delete group edge {i}-{j}, H'={list(Hk)}",
                                      change, self._tolerance_of(df)))
            D, U = self._cpdag(Dn, Un)
            params, f_cur, order_cur = fitted[best], float(f[best]), orders[best]
        group_dag, params, f_cur = self._best_extension(mask, groups, D, U, params, order_cur)
        mask, params, f_cur = self._resolve_parents(mask, groups, group_dag, params, f_cur)
        if self.refine:
            mask, params, f_cur = self._refine_loadings(mask, groups, group_dag, params, f_cur)
        structure = self._to_structure(mask, groups, group_dag, names)  # lines 14-16
        return structure, params, f_cur

    def _no_latent_model(self, mask, names):
        """Phase 1 found no latent: the items are independent (Sigma = diag(S) = I)."""
        p = mask.shape[0]
        params = Params(np.zeros((p, 0)), np.zeros((0, 0)), np.ones(p))
        structure = Structure.from_masks(names, [], np.zeros((p, 0), dtype=bool), groups=[])
        return structure, params, 0.5 * p

    def _best_extension(self, mask, groups, D, U, params, order_cur, max_dags=120):
        """Lines 14-15 with the orientation chosen by likelihood.

        Deleting the edges inside groups makes the group-level equivalence class
        split: an edge out of a two-latent group forms a v-structure among
        latents, an edge into it does not, and the two fit differently. Every
        DAG of the group CPDAG's class (up to ``max_dags``, by topological
        orders) is expanded to latents without within-group edges and fitted
        exactly; the best one is kept.
        """
        dags = consistent_extensions(D, U, limit=max_dags)
        masks, parents, starts, orders = [], [], [], []
        for dag in dags:
            lat_mask, lat_parents, order = self._final_dag(mask, groups, dag)
            masks.append(lat_mask)
            parents.append(lat_parents)
            orders.append(order)
            perm = [order_cur.index(lat) for lat in order]
            starts.append(dag_start(self._reorder(params, perm), lat_parents))
        f, fitted = self._fit(np.stack(masks), np.stack(parents), starts)
        self.n_candidates_ += len(dags)
        best = _best_of_ties(f, self._tie_rng)
        return dags[best], fitted[best], float(f[best])

    def _resolve_parents(self, mask, groups, group_dag, params, f_cur):
        """Items with tied parent sets (:meth:`_keep_parents`) keep the set the final model fits best.

        Each such item in turn: the final structure is refitted exactly with each
        of its options (warm-started from the current optimum with the other
        loadings removed) and the best one is kept.
        """
        for j, options in sorted(self._parent_options.items()):
            rows = [(j, np.isin(np.arange(mask.shape[1]), option)) for option in options]
            mask, params, f_new, best = self._refit_rows(mask, groups, group_dag, params, rows)
            self.history_.append(Step(2, "after l.15", f"item {j} keeps latents {options[best]} only",
                                      f_new - f_cur, float("nan")))
            f_cur = f_new
        return mask, params, f_cur

    def _refine_loadings(self, mask, groups, group_dag, params, f_cur, n_exact=6, max_rounds=None):
        """Group -> item edges added back, then removed again, on the final latent graph.

        Not in the paper. Phase 1 decides every item's parents in the Phase-1
        state, whose latent covariance is unrestricted; once Phase 2 has deleted
        latent edges, a parent that Phase 1 dropped can matter again (and a weak
        pair test may have put an item in the wrong group). As GES's forward
        and backward phases on these edges: while some item -> group edge is
        missing whose deletion the tolerance would reject, the one that
        improves the likelihood most is added (the candidates are shortlisted
        by their modification index, Sorbom 1989, and refitted exactly); then
        each item's group edges are deleted again while a deletion passes.
        """
        max_rounds = 2 * mask.shape[0] if max_rounds is None else max_rounds
        not_salient = set()
        for _ in range(max_rounds):
            missing = [c for c in self._missing_group_edges(mask, groups, group_dag, params)
                       if c[:2] not in not_salient]
            if not missing:
                break
            new_mask, new_params, f_new, best = self._refit_rows(
                mask, groups, group_dag, params, [self._row_with(mask, groups, *c) for c in missing[:n_exact]])
            j, g, _ = missing[best]
            gain, tolerance = f_cur - f_new, self._addition_tolerance(len(groups[g]), len(missing))
            if gain <= tolerance:                                      # its deletion would pass: stop
                break
            if self._standardized_loading(new_mask, groups, group_dag, new_params, j, g) < self.min_loading:
                not_salient.add((j, g))
                continue
            self.history_.append(Step(2, "refine (add)", f"item {j} gains group {g}", -float(gain), tolerance))
            mask, params, f_cur = new_mask, new_params, f_new
        return self._prune_group_edges(mask, groups, group_dag, params, f_cur)

    def _standardized_loading(self, mask, groups, group_dag, params, j, g):
        """Group g's standardized loading on item j: sqrt(lambda_G Phi_GG lambda_G' / Sigma_jj).

        Invariant to rotations inside the group, unlike the loadings of its
        single latents.
        """
        _, _, order = self._final_dag(mask, groups, group_dag)
        return params.standardized_loading(j, [order.index(lat) for lat in groups[g]])

    def _addition_tolerance(self, df, n_tests):
        """Tolerance an added edge's gain must exceed: the deletion rule, Bonferroni-corrected under "lr".

        The best of ``n_tests`` absent edges is added, so under ``"lr"`` its
        test runs at level alpha / n_tests; without that, the largest of some
        fifty null statistics passes the 1/N level often enough to add false edges.
        """
        if self.criterion_ != "lr":
            return self._tolerance_of(df)
        return _chi2_quantile(1 - self.alpha_ / max(n_tests, 1), max(int(df), 1)) / (2 * self.n_samples_)

    def _prune_group_edges(self, mask, groups, group_dag, params, f_cur):
        """Backward pass of :meth:`_refine_loadings`: delete passing group -> item edges, best first."""
        while True:
            cands = []
            for j in range(mask.shape[0]):
                held = [g for g, grp in enumerate(groups) if mask[j, grp].all()]
                cands += [(j, g, False) for g in held] if len(held) > 1 else []
            if not cands:
                return mask, params, f_cur
            new_mask, new_params, f_new, best = self._refit_rows(
                mask, groups, group_dag, params, [self._row_with(mask, groups, *c) for c in cands])
            j, g, _ = cands[best]
            change = f_new - f_cur
            if not self._accepts(change, len(groups[g])):
                return mask, params, f_cur
            self.history_.append(Step(2, "refine (delete)", f"item {j} loses group {g}",
                                      float(change), self._tolerance_of(len(groups[g]))))
            mask, params, f_cur = new_mask, new_params, f_new

    def _missing_group_edges(self, mask, groups, group_dag, params):
        """Absent item <- group edges, best modification index first, as (j, g, True).

        The index of a single loading is N g^2 / I (score test): g = (M Lambda Phi)_jl
        with M = Sigma^-1 - Sigma^-1 S Sigma^-1 is df/dlambda_jl at the current
        optimum and I = (Sigma^-1)_jj a' Sigma^-1 a + (a' Sigma^-1 e_j)^2, a = (Lambda
        Phi)_l, its Fisher information; a group's index sums its members'.
        """
        _, _, order = self._final_dag(mask, groups, group_dag)
        pos = {lat: n for n, lat in enumerate(order)}
        Sigma = params.implied_covariance()
        Sinv = np.linalg.inv(Sigma)
        A = params.Lambda @ params.latent_covariance()                  # columns a_l
        G = (Sinv - Sinv @ self._S @ Sinv) @ A
        SA = Sinv @ A
        info = np.outer(np.diag(Sinv), np.einsum("pl,pl->l", A, SA)) + SA**2
        mi = self.n_samples_ * G**2 / np.maximum(info, 1e-300)
        cands = []
        for j in range(mask.shape[0]):
            for g, grp in enumerate(groups):
                if not mask[j, grp].any():
                    cands.append((float(sum(mi[j, pos[lat]] for lat in grp)), j, g))
        return [(j, g, True) for _, j, g in sorted(cands, reverse=True)]

    @staticmethod
    def _row_with(mask, groups, j, g, add):
        """(j, item j's parent row with group g's latents set to ``add``)."""
        row = mask[j].copy()
        row[groups[g]] = add
        return j, row

    def _refit_rows(self, mask, groups, group_dag, params, rows):
        """Refit the final structure once per (item j, new parent row); the best one.

        Each candidate is warm-started from the current optimum with the loadings
        it drops set to zero. Returns the new mask, params, f and the best index.
        """
        lat_mask, parents, order = self._final_dag(mask, groups, group_dag)
        masks, starts = [], []
        for j, row in rows:
            cand = lat_mask.copy()
            cand[j] = row[order]
            masks.append(cand)
            starts.append(Params(params.Lambda * cand, params.B.copy(), params.psi.copy()))
        f, fitted = self._fit(np.stack(masks), parents, starts)
        self.n_candidates_ += len(rows)
        best = _best_of_ties(f, self._tie_rng)
        new_mask = mask.copy()
        new_mask[rows[best][0]] = rows[best][1]
        return new_mask, fitted[best], float(f[best]), best

    def _final_dag(self, mask, groups, group_dag):
        """:meth:`_latent_dag` of a group DAG without edges inside groups (Alg. 2 lines 14-15)."""
        return self._latent_dag(mask, groups, group_dag, np.zeros_like(group_dag), within_groups=False)

    def _shortlist(self, cands, D, U, params, order_cur, groups):
        """The candidates worth an exact refit in this round (line 11).

        With few candidates, all of them. Otherwise they are ranked by the GES
        local-score change of the deletion computed on the current fit's latent
        covariance Phi (as if the latents were observed; Chickering 2002,
        Theorem 17: Delete(X, Y, H) changes only Y's local score, from parents
        Pa_Y + (NA_YX minus H) + X to Pa_Y + (NA_YX minus H)), and the best
        ``self.n_exact_phase2`` are refitted exactly.
        """
        if len(cands) <= self.n_exact_phase2:
            return cands
        Phi = params.latent_covariance()
        pos = {lat: n for n, lat in enumerate(order_cur)}
        members = [[pos[lat] for lat in grp] for grp in groups]

        def logdet_given(y, Z):
            Y = members[y]
            Zl = [v for z in Z for v in members[z]]
            block = Phi[np.ix_(Y, Y)]
            if Zl:
                block = block - Phi[np.ix_(Y, Zl)] @ np.linalg.solve(Phi[np.ix_(Zl, Zl)], Phi[np.ix_(Zl, Y)])
            return np.linalg.slogdet(block)[1]

        proxies = []
        for (i, j, Hk), _, _ in cands:
            NA = [h for h in range(D.shape[0]) if U[h, j] and (U[h, i] or D[h, i] or D[i, h])]
            Z = [h for h in range(D.shape[0]) if D[h, j] and h != i] + [h for h in NA if h not in Hk]
            proxies.append(0.5 * (logdet_given(j, Z) - logdet_given(j, Z + [i])))
        keep = np.argsort(proxies, kind="stable")[: self.n_exact_phase2]
        return [cands[k] for k in sorted(keep)]

    def _fit_phase1_model(self, mask, groups):
        """Exact fit of S_phase1: found latents, complete latent graph (with restarts)."""
        m = mask.shape[1]
        spec = ScoreSpec(mask, np.tril(np.ones((m, m), dtype=bool), -1))
        result = score_spec(spec, self._S, self.n_samples_, n_restarts=self.n_restarts,
                            random_state=self._rng)
        return result.params, result.f

    def _ll_candidates(self, D, U):
        """Alg. 2 lines 5-10: O_LL(S, L_i, L_j, H') for adjacent groups and subsets H'."""
        g = D.shape[0]
        seen, cands = set(), []
        for i in range(g):                                             # line 5
            for j in range(g):                                         # line 6
                if i == j or not (U[i, j] or D[i, j]):                 # line 7
                    continue
                H = [h for h in range(g) if U[h, j] and h != i
                     and (U[h, i] or D[h, i] or D[i, h])]              # line 8
                for r in range(len(H) + 1):
                    for Hk in itertools.combinations(H, r):            # line 9
                        new = self._delete_ll(D, U, i, j, Hk)          # line 10
                        if new is None:
                            continue
                        key = (new[0].tobytes(), new[1].tobytes())
                        if key not in seen:
                            seen.add(key)
                            cands.append(((i, j, Hk), *new))
        self.n_candidates_ += len(cands)
        return cands

    @staticmethod
    def _delete_ll(D, U, i, j, H):
        """O_LL (Definition 5) on the group PDAG; None when no DAG extends the result."""
        Dn, Un = D.copy(), U.copy()
        Dn[i, j] = Dn[j, i] = Un[i, j] = Un[j, i] = False
        for h in H:
            for a in (i, j):
                if Un[a, h]:
                    Un[a, h] = Un[h, a] = False
                    Dn[a, h] = True
        if pdag_to_dag(Dn, Un) is None:
            return None
        return Dn, Un

    @staticmethod
    def _cpdag(D, U):
        """The CPDAG of the PDAG's class: consistent extension, then completion."""
        dag = pdag_to_dag(D, U)
        return dag_to_cpdag(dag)

    @staticmethod
    def _latent_dag(mask, groups, Dg, Ug, within_groups=True):
        """Latent-level DAG of a group PDAG: groups in topological order, members complete.

        Returns the loading mask, the (m, m) parent mask in the new latent order,
        and that order (a permutation of the phase-1 latent columns).
        """
        dag = pdag_to_dag(Dg, Ug)
        group_order = topological_order(dag)
        order = [lat for gi in group_order for lat in groups[gi]]
        m = len(order)
        pos = {lat: n for n, lat in enumerate(order)}
        parents = np.zeros((m, m), dtype=bool)
        for a in range(len(groups)):
            for b in range(len(groups)):
                if dag[a, b]:
                    for la in groups[a]:
                        for lb in groups[b]:
                            parents[pos[lb], pos[la]] = True
        if within_groups:  # edges inside a group stay until Alg. 2 lines 14-15
            for grp in groups:
                for x, y in itertools.combinations(sorted(grp, key=pos.get), 2):
                    parents[pos[y], pos[x]] = True
        return mask[:, order], parents, order

    @staticmethod
    def _reorder(params, order):
        """Params with latents permuted to ``order`` (Sigma unchanged)."""
        Phi = params.latent_covariance()[np.ix_(order, order)]
        return params_from_phi(params.Lambda[:, order], Phi, params.psi)

    def _to_structure(self, mask, groups, group_dag, names):
        """Final structure (Alg. 2 lines 14-16): latents L1.. by group, CPDAG among latents.

        The chosen group DAG is expanded to latents (a group edge joins every
        member pair; members of a group are left non-adjacent, line 15), and the
        CPDAG of that latent DAG is taken: edges out of a multi-latent group form
        v-structures there.
        """
        order = [lat for grp in groups for lat in grp]
        latent_names = {lat: f"L{n + 1}" for n, lat in enumerate(order)}
        latent = [latent_names[lat] for lat in order]
        pos = {lat: n for n, lat in enumerate(order)}
        m = len(order)
        dag = np.zeros((m, m), dtype=bool)
        for a in range(len(groups)):
            for b in range(len(groups)):
                if group_dag[a, b]:
                    for la in groups[a]:
                        for lb in groups[b]:
                            dag[pos[la], pos[lb]] = True
        directed, undirected = dag_to_cpdag(dag)
        grp_names = [[latent_names[lat] for lat in grp] for grp in groups]
        return Structure.from_masks(names, latent, mask[:, order], directed, undirected, grp_names)
