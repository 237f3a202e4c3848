"""A greedy BIC search over the measurement part of a generalized N factor model.

Not in the LGES paper. LGES decides which items each latent group causes in
Phase 1, one subset of items at a time, by rank tests against Definition 3's
state; Phase 2 never revisits that decision. At small N those tests err in
ways the rest of the search cannot undo: an item is given a wrong or an extra
group, two groups are merged into one, a two-latent group is taken for one
latent or the other way round (reports/benchmarks/lges_changes.md section 12).

This module searches the measurement model directly. A state is a
:class:`Clustering`: which groups cause each item, and how many latents each
group has. It is scored by the BIC (Schwarz 1978) of its model with a
saturated latent covariance, the state Phase 1 ends in (Algorithm 2, line 3),
so the score does not depend on the latent graph Phase 2 will choose. The
moves are

* ``toggle``: item j gains or loses group g (it keeps at least one group);
* ``move``: an item caused by one group only moves to another group;
* ``split``: two children of a group leave it for a new one-latent group;
* ``resize``: a group of one latent becomes two, or two become one;
* ``merge``: two groups become one group of one or two latents.

Each round screens every move by a few Levenberg-Marquardt iterations from a
warm start (any iterate's f bounds the optimum from above), refits the best
``n_exact`` item moves and ``n_exact_groups`` group moves to convergence, and
takes the best if it lowers the BIC, as GES takes the best operator
(Chickering 2002).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from .exceptions import ConvergenceWarning
from .score import Params, ScoreSpec, _cluster_start, score_spec

__all__ = ["Clustering", "regroup"]


@dataclass(frozen=True)
class Clustering:
    """Which latent groups cause each item, and the size of each group.

    Attributes
    ----------
    children : ndarray of bool, shape (p, G)
        ``children[j, g]``: group g causes item j (every member of g does,
        Definition 2 (ii)).
    sizes : tuple of int, length G
        Latents in each group.
    """

    children: np.ndarray
    sizes: tuple

    @classmethod
    def from_mask(cls, mask, groups):
        """From a latent loading mask (p, m) and groups of its column indices."""
        mask = np.asarray(mask, dtype=bool)
        children = np.column_stack([mask[:, grp[0]] for grp in groups]) if groups else np.zeros((mask.shape[0], 0), bool)
        return cls(children, tuple(len(grp) for grp in groups))

    @classmethod
    def from_structure(cls, structure):
        """The clustering of a :class:`latentsem.model.Structure` (its groups and their children)."""
        index = {name: k for k, name in enumerate(structure.latent)}
        return cls.from_mask(structure.loading_mask(), [[index[x] for x in grp] for grp in structure.groups])

    def expand(self):
        """The latent loading mask (p, m) and groups of column indices, a group's members adjacent."""
        cols, groups = [], []
        for g, size in enumerate(self.sizes):
            groups.append(list(range(len(cols), len(cols) + size)))
            cols += [g] * size
        return self.children[:, cols], groups

    def parents(self):
        """Latent parent mask (m, m) of the saturated model: every group causes every later group.

        Within a group the members are left non-adjacent: any latent covariance is
        reached by rotating each group's latents so that their covariance given
        the earlier groups is diagonal, and the within-group edges would only add
        flat directions, in which the fits crawl.
        """
        m = self.n_latent
        parents = np.tril(np.ones((m, m), dtype=bool), -1)
        for grp in self.expand()[1]:
            parents[np.ix_(grp, grp)] = False
        return parents

    @property
    def n_latent(self):
        return sum(self.sizes)

    def n_parameters(self):
        """Identified free parameters with a saturated latent covariance.

        Loadings, item variances and latent covariances (latent variances carry
        the scale); a group of s latents shares its children, so an oblique
        rotation among them (s^2 entries, s fixed by the scale) leaves Sigma
        unchanged: s (s - 1) fewer.
        """
        m = self.n_latent
        loadings = int((self.children @ np.asarray(self.sizes, dtype=int)).sum()) if self.sizes else 0
        return loadings + self.children.shape[0] + m * (m - 1) // 2 - sum(s * (s - 1) for s in self.sizes)

    def key(self):
        """Identity up to the order of the groups."""
        return tuple(sorted((self.children[:, g].tobytes(), s) for g, s in enumerate(self.sizes)))

    def describe(self, g):
        return f"group {g} ({self.sizes[g]} latent{'s' if self.sizes[g] > 1 else ''})"


@dataclass(frozen=True)
class Move:
    """One candidate of a round: what it does, the clustering it leads to, and its warm start."""

    description: str
    clustering: Clustering
    start: Params
    added: tuple = ()        # (item, group) edges the move adds, groups indexed in ``clustering``


def _keeps_children(after, groups):
    """Each changed group keeps 2 children per latent (Definition 2 (i) asks 2 |group| pure ones)."""
    return all(after.children[:, g].sum() >= 2 * after.sizes[g] for g in groups)


def _row_start(params, j, new_row):
    """Warm start after item j's groups change: its dropped loadings 0, its new ones 0."""
    Lambda = params.Lambda.copy()
    Lambda[j] = np.where(new_row, Lambda[j], 0.0)
    return Params(Lambda, params.B.copy(), params.psi.copy())


def _item_moves(clustering, params):
    """toggle and move: the candidates that change one item's groups (warm-started)."""
    A, sizes = clustering.children, clustering.sizes
    p, G = A.shape
    for j in range(p):
        for g in range(G):
            B = A.copy()
            B[j, g] = not A[j, g]
            after = Clustering(B, sizes)
            if B[j].any() and (B[j, g] or _keeps_children(after, [g])):
                verb = "gains" if B[j, g] else "loses"
                yield Move(f"item {j} {verb} {clustering.describe(g)}", after,
                           _row_start(params, j, after.expand()[0][j]), ((j, g),) if B[j, g] else ())
        if A[j].sum() == 1:
            g = int(np.flatnonzero(A[j])[0])
            for h in range(G):
                if h == g:
                    continue
                B = A.copy()
                B[j, g], B[j, h] = False, True
                after = Clustering(B, sizes)
                if _keeps_children(after, [g]):
                    yield Move(f"item {j} moves from group {g} to group {h}", after,
                               _row_start(params, j, after.expand()[0][j]), ((j, h),))


def _split_moves(clustering, params, S):
    """split: two children of a group leave it (and any other group) for a new one-latent group.

    Warm-started: the new latent comes last, independent of the others, with
    loadings sqrt(|S_jk|) on its two items.
    """
    A, sizes = clustering.children, clustering.sizes
    p, G = A.shape
    for g in range(G):
        for j, k in itertools.combinations(np.flatnonzero(A[:, g]), 2):
            B = np.column_stack([A, np.zeros(p, dtype=bool)])
            B[[j, k]] = False
            B[[j, k], G] = True
            after = Clustering(B, tuple(sizes) + (1,))
            changed = [h for h in range(G) if A[j, h] or A[k, h]]
            if not _keeps_children(after, changed):
                continue
            m = clustering.n_latent
            Lambda = np.zeros((p, m + 1))
            Lambda[:, :m] = params.Lambda
            Lambda[[j, k], :m] = 0.0
            load = math.sqrt(abs(S[j, k]))
            Lambda[[j, k], m] = load, math.copysign(load, S[j, k])
            Bmat = np.zeros((m + 1, m + 1))
            Bmat[:m, :m] = params.B
            yield Move(f"items {j} and {k} leave {clustering.describe(g)} for a new latent", after,
                       Params(Lambda, Bmat, params.psi.copy()))


def _group_moves(clustering, S):
    """resize and merge: the candidates that change the latents (cold-started by cluster)."""
    A, sizes = clustering.children, clustering.sizes
    G = A.shape[1]
    for g in range(G):
        resized = list(sizes)
        resized[g] = 3 - sizes[g] if sizes[g] in (1, 2) else 1
        after = Clustering(A, tuple(resized))
        if _keeps_children(after, [g]):
            yield Move(f"{clustering.describe(g)} gets {resized[g]} latent{'s' if resized[g] > 1 else ''}",
                       after, _cluster_start(after.expand()[0], S))
    for g, h in itertools.combinations(range(G), 2):
        for size in (1, 2):
            B = np.delete(A, h, axis=1)
            B[:, g] = A[:, g] | A[:, h]
            merged = [s for i, s in enumerate(sizes) if i != h]
            merged[g] = size
            after = Clustering(B, tuple(merged))
            if _keeps_children(after, [g]):
                yield Move(f"groups {g} and {h} merge into one of {size} latent{'s' if size > 1 else ''}",
                           after, _cluster_start(after.expand()[0], S))


def regroup(S, n, clusterings, fit, *, n_exact=4, n_exact_groups=2, screen_iter=8, n_restarts=2,
            min_loading=0.2, random_state=None, max_rounds=None):
    """Greedy BIC searches over clusterings, one from each start (see the module docstring).

    The searches run one after the other and share what they learn: a
    clustering fitted to convergence is not fitted again, and a search that
    reaches a clustering an earlier one passed through follows that search's
    path from there (the greedy choice is the same).

    Parameters
    ----------
    S : ndarray, shape (p, p)
        Correlation matrix of the items.
    n : int
        Sample size.
    clusterings : list of Clustering
        Where the searches start (the measurement parts of LGES models).
    fit : callable
        ``fit(masks, parents, starts, max_iter) -> (f, params)``, a batched
        exact fit whose members do not depend on each other, such as
        :func:`latentsem.score.fit_specs` (LGES passes its worker-splitting wrapper).
    n_exact, n_exact_groups : int
        Screened item moves (toggle, move, split) and group moves (resize,
        merge) refitted to convergence per round.
    screen_iter : int
        Levenberg-Marquardt iterations of the screen.
    n_restarts : int
        Random restarts of each start's fit.
    min_loading : float
        A move that gives an item a group is taken only when the group's
        standardized loading on it reaches this (LGES's ``min_loading``): with
        thousands of respondents BIC accepts cross-loadings too small to interpret.
    random_state : int or Generator, optional
    max_rounds : int, optional
        Accepted moves per search; default twice the number of items.

    Returns
    -------
    list of (Clustering, list of (str, float), float)
        Per distinct end, in the order of the starts: the clustering where no
        move lowers the BIC, the accepted moves that led there with the BIC
        change of each, and its BIC.
    n_candidates : int
        Candidates scored.
    """
    S = np.asarray(S, dtype=float)
    climber = _Climber(S, n, fit, n_exact, n_exact_groups, screen_iter, n_restarts, min_loading,
                       np.random.default_rng(random_state), 2 * S.shape[0] if max_rounds is None else max_rounds)
    ends = {}
    with warnings.catch_warnings():
        # Intermediate fits: the model LGES keeps is refitted by its Phase 2, which reports its own.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for clustering in clusterings:
            end = climber.climb(clustering)
            ends.setdefault(end[0].key(), end)
    return list(ends.values()), climber.n_candidates


class _Climber:
    """The searches of :func:`regroup`, sharing converged fits and the paths already climbed."""

    def __init__(self, S, n, fit, n_exact, n_exact_groups, screen_iter, n_restarts, min_loading, rng, max_rounds):
        self.S, self.n, self.fit, self.min_loading = S, n, fit, min_loading
        self.n_exact, self.n_exact_groups, self.screen_iter = n_exact, n_exact_groups, screen_iter
        self.n_restarts, self.rng, self.max_rounds = n_restarts, rng, max_rounds
        self.cache = {}          # clustering key -> converged (f, params)
        self.ends = {}           # clustering key -> (end clustering, steps from there, end BIC)
        self.n_candidates = 0

    def climb(self, clustering):
        """Best-improvement moves from ``clustering`` until none lowers the BIC."""
        fitted = score_spec(ScoreSpec(clustering.expand()[0], clustering.parents()), self.S, self.n,
                            n_restarts=self.n_restarts, random_state=self.rng)
        params, bic = fitted.params, _bic(fitted.f, clustering, self.n)
        path = []
        for _ in range(self.max_rounds):
            if clustering.key() in self.ends:   # an earlier search went on from here: the same greedy path
                end, rest, bic = self.ends[clustering.key()]
                return self._finish(path, end, rest, bic)
            move, new_params, new_bic = self._best_move(clustering, params)
            if move is None or new_bic >= bic - 1e-6:
                break
            path.append((clustering.key(), move.description, new_bic - bic))
            clustering, params, bic = move.clustering, new_params, new_bic
        return self._finish(path, clustering, [], bic)

    def _finish(self, path, end, rest, bic):
        """Record where each clustering of ``path`` leads; (end, steps, BIC)."""
        steps = [(description, change) for _, description, change in path] + rest
        for i, (key, _, _) in enumerate(path):
            self.ends[key] = (end, steps[i:], bic)
        self.ends.setdefault(end.key(), (end, [], bic))
        return end, steps, bic

    def _best_move(self, clustering, params):
        """One round: screen every move, refit the best, return (move, params, BIC) of the best refit."""
        item_moves = list(_item_moves(clustering, params)) + list(_split_moves(clustering, params, self.S))
        moves = item_moves + list(_group_moves(clustering, self.S))
        if not moves:
            return None, None, np.inf
        self.n_candidates += len(moves)
        screened = _fit_moves(moves, self.fit, self.screen_iter, [m.start for m in moves], self.cache)
        bics = np.array([_bic(f, move.clustering, self.n) for move, (f, _) in zip(moves, screened)])
        # The screen's best item moves and best group moves are refitted to convergence, from the
        # screened point and from a fresh start: a warm start can stall in a local optimum.
        n_item = len(item_moves)
        best = sorted(np.argsort(bics[:n_item], kind="stable")[:self.n_exact]) + \
            sorted(n_item + np.argsort(bics[n_item:], kind="stable")[:self.n_exact_groups])
        starts = [[screened[i][1], _cluster_start(moves[i].clustering.expand()[0], self.S,
                                                  self.rng if i >= n_item else None, 0.3 if i >= n_item else 0.0)]
                  for i in best]
        exact = _fit_moves([moves[i] for i in best], self.fit, _CONVERGED_ITER, starts, self.cache)
        exact_bics = [_bic(f, moves[i].clustering, self.n) for i, (f, _) in zip(best, exact)]
        for k in np.argsort(exact_bics, kind="stable"):
            move, params = moves[best[k]], exact[k][1]
            groups = move.clustering.expand()[1]
            if all(params.standardized_loading(j, groups[g]) >= self.min_loading for j, g in move.added):
                return move, params, exact_bics[k]
        return None, None, np.inf


_CONVERGED_ITER = 200


def _bic(f, clustering, n):
    """BIC on the per-sample scale f: 2 N f + k log N (the constant N p log 2 pi left out)."""
    return 2 * n * f + clustering.n_parameters() * math.log(n)


def _fit_moves(moves, fit, max_iter, starts, cache):
    """Fit each move's model from its start; (f, params) per move, batched by number of latents.

    ``cache`` maps clustering keys to converged fits (``max_iter`` of at least
    ``_CONVERGED_ITER``): a clustering refitted to convergence before, earlier
    in this search or in another, is not fitted again.
    """
    out = [None] * len(moves)
    by_m = {}
    for i, move in enumerate(moves):
        hit = cache.get(move.clustering.key())
        if hit is not None:
            out[i] = hit
        else:
            by_m.setdefault(move.clustering.n_latent, []).append(i)
    for idx in by_m.values():
        masks = np.stack([moves[i].clustering.expand()[0] for i in idx])
        parents = np.stack([moves[i].clustering.parents() for i in idx])
        f, params = fit(masks, parents, [starts[i] for i in idx], max_iter)
        for i, f_i, params_i in zip(idx, f, params):
            out[i] = (float(f_i), params_i)
            if max_iter >= _CONVERGED_ITER:
                cache[moves[i].clustering.key()] = out[i]
    return out
