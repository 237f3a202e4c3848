"""Compare an estimated latent structure with the true one (the paper's section 5.1 metrics).

Both metrics are computed over ALL variables, latent included, after matching
estimated latents to true ones (latent names are arbitrary):

* the F1 score (with precision and recall) of the skeleton;
* the structural Hamming distance (SHD) between CPDAGs: the CPDAG of the true
  DAG against the CPDAG of a consistent extension of the estimated structure.
  As in causal-learn's ``SHD`` class, every unordered pair of variables whose
  edge marks differ counts 1: a missing edge, an extra edge, a reversed edge,
  or a directed edge against an undirected one.

Which CPDAG (``level``). The paper's states are CPDAGs whose latent part is a
graph over *groups* (Definition 2; O_LL of Definition 5 deletes and orients
edges between groups), and its Theorem 3 identifies that graph up to its
Markov equivalence class. ``level="group"`` (the default) therefore takes the
CPDAG of the quotient graph in which each group of latents is one node (the
edges of a group apply to every member, Definition 2 (ii)) and gives every
member edge the mark of its group edge. ``level="latent"`` takes the CPDAG of
the DAG over single latents instead. The two differ only at groups of two or
more latents: over single latents, the members L1, L2 of a group that causes
L3 form a v-structure L1 -> L3 <- L2, which compels the orientation, while the
reverse L3 -> {L1, L2} is a tree. Yet the two generate the same covariance
matrices of the items (a rotation of the group's latents turns either
latent covariance into the other; ``tests/test_metrics_latent.py`` fits both),
so no score can tell them apart, and over single latents two consistent
extensions of one LGES output can even have different CPDAGs. With every
group a single latent the two levels agree.

Matching (:func:`match_latents`): a maximum-weight assignment
(``scipy.optimize.linear_sum_assignment``) on the number of shared observed
children, ties broken by the rest of the graph (lowest SHD, then most shared
skeleton edges). When the numbers of latents differ, unmatched estimated
latents are extra nodes (all their edges are errors) and unmatched true
latents are missing nodes. Matching as many pairs as possible is never worse:
merging an unmatched true and an unmatched estimated latent into one node can
only turn two errors on a pair into one or none.

Residual covariance edges (``~~``) are not part of a DAG and are ignored.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..exceptions import StructureError
from ..graph import dag_to_cpdag, has_directed_cycle, pdag_to_dag


@dataclass(frozen=True)
class LatentComparison:
    """Result of :func:`compare_structures`.

    Attributes
    ----------
    f1, precision, recall : float
        Skeleton scores over all variables (latent included).
    shd : int
        SHD between the CPDAGs over all variables.
    level : {"group", "latent"}
        The CPDAG the SHD compares (see the module docstring).
    matching : dict
        Estimated latent name -> matched true latent name.
    extra_latents, missing_latents : list of str
        Unmatched estimated latents and unmatched true latents.
    true_edges, estimated_edges, shared_edges : int
        Skeleton sizes and their intersection.
    """

    f1: float
    precision: float
    recall: float
    shd: int
    matching: dict = field(default_factory=dict)
    extra_latents: list = field(default_factory=list)
    missing_latents: list = field(default_factory=list)
    true_edges: int = 0
    estimated_edges: int = 0
    shared_edges: int = 0
    level: str = "group"

    def summary(self):
        """One readable block with the metrics and the latent matching."""
        pairs = ", ".join(f"{e}->{t}" for e, t in self.matching.items()) or "none"
        lines = [
            f"skeleton F1 {self.f1:.3f} (precision {self.precision:.3f}, recall {self.recall:.3f}; "
            f"{self.shared_edges} shared of {self.estimated_edges} estimated, {self.true_edges} true edges)",
            f"SHD between CPDAGs {self.shd} ({'over groups of latents' if self.level == 'group' else 'over single latents'})",
            f"latent matching (estimated->true): {pairs}",
        ]
        if self.extra_latents:
            lines.append(f"extra estimated latents: {', '.join(self.extra_latents)}")
        if self.missing_latents:
            lines.append(f"missing true latents: {', '.join(self.missing_latents)}")
        return "\n".join(lines)

    def to_dict(self):
        return asdict(self)

    def to_json(self, path=None, indent=2):
        """The JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent) + "\n"
        if path is not None:
            with open(path, "w") as handle:
                handle.write(text)
        return text


# ------------------------------------------------------------ public API
def match_latents(true, est, level="group"):
    """Match estimated latents to true ones: ``{estimated name: true name}``.

    Maximizes the number of shared observed children (Hungarian algorithm),
    then, among assignments with that same total, improves the rest of the
    graph (lower SHD, then more shared skeleton edges) by pairwise swaps.
    ``min(#true, #estimated)`` pairs are matched.
    """
    return _Comparison(true, est, level).matching


def skeleton_f1(true, est):
    """Skeleton ``{"f1", "precision", "recall"}`` over all variables after matching latents."""
    result = compare_structures(true, est)
    return {"f1": result.f1, "precision": result.precision, "recall": result.recall}


def shd(true, est, level="group"):
    """SHD between the CPDAGs of ``true`` and of ``est`` over all variables after matching latents."""
    return compare_structures(true, est, level).shd


def compare_structures(true, est, level="group"):
    """All metrics at once, as a :class:`LatentComparison`.

    ``level`` picks the CPDAG the SHD compares: ``"group"`` (each group of
    latents one node, the paper's states) or ``"latent"`` (single latents);
    see the module docstring. The skeleton scores do not depend on it.
    """
    comparison = _Comparison(true, est, level)
    marks_true, marks_est = comparison.marks_for(comparison.assignment)
    tp, n_true, n_est = _skeleton_counts(marks_true, marks_est)
    if n_true == 0 and n_est == 0:
        precision = recall = f1 = 1.0  # two empty graphs agree
    else:
        precision = tp / n_est if n_est else 0.0
        recall = tp / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    matched_true = set(comparison.matching.values())
    return LatentComparison(
        f1=float(f1), precision=float(precision), recall=float(recall),
        shd=_shd(marks_true, marks_est), level=level,
        matching=comparison.matching,
        extra_latents=[name for name in est.latent if name not in comparison.matching],
        missing_latents=[name for name in true.latent if name not in matched_true],
        true_edges=n_true, estimated_edges=n_est, shared_edges=tp,
    )


# -------------------------------------------------------------- internals
def cpdag_marks(structure, level="group"):
    """Edge marks of the CPDAG of ``structure`` over ``observed + latent``.

    ``A[i, j] = 1, A[j, i] = 0`` for i -> j; ``A[i, j] = A[j, i] = 1`` for i - j.
    ``level="latent"``: the CPDAG over all variables of a consistent extension
    (a DAG of the structure's class). ``level="group"``: the CPDAG of the
    quotient graph with one node per group of latents, each member edge taking
    its group edge's mark (module docstring). A structure whose edges do not
    respect its groups (a member pointing into a group and another out of it)
    has no quotient DAG and is read at the latent level.
    """
    if level not in ("group", "latent"):
        raise ValueError(f"level must be 'group' or 'latent', got {level!r}.")
    names = list(structure.observed) + list(structure.latent)
    if level == "group" and any(len(g) > 1 for g in structure.groups):
        marks = _group_cpdag_marks(structure, names)
        if marks is not None:
            return marks
    dag = structure.to_dag()
    index = {name: i for i, name in enumerate(names)}
    D = np.zeros((len(names),) * 2, dtype=bool)
    for e in dag.edges:
        if e.type == "directed":
            D[index[e.source], index[e.target]] = True
    directed, undirected = dag_to_cpdag(D)
    return (directed | undirected).astype(np.int8)


def _group_cpdag_marks(structure, names):
    """Marks from the CPDAG of the group quotient graph, or ``None`` when it has no DAG extension."""
    p = len(structure.observed)
    node = {name: i for i, name in enumerate(structure.observed)}
    node.update({lat: p + g for g, members in enumerate(structure.groups) for lat in members})
    size = p + len(structure.groups)
    D, U = np.zeros((size, size), dtype=bool), np.zeros((size, size), dtype=bool)
    position = {name: i for i, name in enumerate(names)}
    pairs = []
    for e in structure.edges:
        if e.type == "covariance":
            continue
        a, b = node[e.source], node[e.target]
        pairs.append((position[e.source], position[e.target], a, b))
        if e.type == "directed":
            D[a, b] = True
        else:
            U[a, b] = U[b, a] = True
    U &= ~(D | D.T)
    if (D & D.T).any() or has_directed_cycle(D):
        return None
    quotient = pdag_to_dag(D, U)
    if quotient is None:
        return None
    directed, undirected = dag_to_cpdag(quotient)
    marks = np.zeros((len(names),) * 2, dtype=np.int8)
    for i, j, a, b in pairs:
        if undirected[a, b]:
            marks[i, j] = marks[j, i] = 1
        elif directed[a, b]:
            marks[i, j] = 1
        else:
            marks[j, i] = 1
    return marks


def _skeleton_counts(marks_true, marks_est):
    adj_true = np.triu((marks_true | marks_true.T) > 0, k=1)
    adj_est = np.triu((marks_est | marks_est.T) > 0, k=1)
    return int((adj_true & adj_est).sum()), int(adj_true.sum()), int(adj_est.sum())


def _shd(marks_true, marks_est):
    """Pairs i < j whose marks (A[i, j], A[j, i]) differ (causal-learn's SHD)."""
    differ = (marks_true != marks_est) | (marks_true.T != marks_est.T)
    return int(np.triu(differ, k=1).sum())


class _Comparison:
    """Both CPDAGs, the children overlap and the chosen assignment of latents."""

    def __init__(self, true, est, level="group"):
        if sorted(true.observed) != sorted(est.observed):
            only_true = sorted(set(true.observed) - set(est.observed))
            only_est = sorted(set(est.observed) - set(true.observed))
            raise StructureError(
                f"The structures have different observed variables (only in the truth: {only_true}; only in the estimate: {only_est}); compare structures over the same items."
            )
        self.true, self.est = true, est
        self.p, self.mt, self.me = len(true.observed), len(true.latent), len(est.latent)
        self.marks_true_own = cpdag_marks(true, level)
        self.marks_est_own = cpdag_marks(est, level)
        self.overlap = _shared_children(true, est)
        self.assignment = self._best_assignment()
        self.matching = {est.latent[e]: true.latent[t] for e, t in enumerate(self.assignment) if t is not None}

    # Union node order: observed (true order), true latents, unmatched estimated latents.
    def marks_for(self, assignment):
        """Both CPDAGs' marks over the union node set, given ``assignment[e] = true index or None``."""
        size = self.p + self.mt + sum(t is None for t in assignment)
        marks_true = np.zeros((size, size), dtype=np.int8)
        marks_true[: self.p + self.mt, : self.p + self.mt] = self.marks_true_own
        obs_pos = {name: i for i, name in enumerate(self.true.observed)}
        position = [obs_pos[name] for name in self.est.observed]
        extra = self.p + self.mt
        for t in assignment:
            if t is None:
                position.append(extra)
                extra += 1
            else:
                position.append(self.p + t)
        position = np.asarray(position)
        marks_est = np.zeros((size, size), dtype=np.int8)
        marks_est[np.ix_(position, position)] = self.marks_est_own
        return marks_true, marks_est

    def _key(self, assignment):
        marks_true, marks_est = self.marks_for(assignment)
        tp, _, _ = _skeleton_counts(marks_true, marks_est)
        return (_shd(marks_true, marks_est), -tp)

    def _primary(self, assignment):
        return sum(self.overlap[t, e] for e, t in enumerate(assignment) if t is not None)

    def _best_assignment(self):
        from scipy.optimize import linear_sum_assignment

        assignment = [None] * self.me
        if self.mt and self.me:
            rows, cols = linear_sum_assignment(self.overlap, maximize=True)
            for t, e in zip(rows, cols):
                assignment[e] = int(t)
        best_primary, best_key = self._primary(assignment), self._key(assignment)
        improved = True
        while improved:  # tie-breaking by the rest of the graph: swaps that keep the overlap total
            improved = False
            for candidate in _neighbour_assignments(assignment, self.mt):
                if self._primary(candidate) != best_primary:
                    continue
                key = self._key(candidate)
                if key < best_key:
                    assignment, best_key, improved = candidate, key, True
                    break
        return assignment


def _neighbour_assignments(assignment, n_true):
    """Assignments one swap away: exchange two estimated latents' partners, or use an unmatched true latent."""
    me = len(assignment)
    for a in range(me):
        for b in range(a + 1, me):
            if assignment[a] != assignment[b]:
                swapped = list(assignment)
                swapped[a], swapped[b] = assignment[b], assignment[a]
                yield swapped
    free = [t for t in range(n_true) if t not in assignment]
    for a in range(me):
        if assignment[a] is not None:
            for t in free:
                moved = list(assignment)
                moved[a] = t
                yield moved


def _shared_children(true, est):
    """``[t, e]`` = number of observed variables that are children of true latent t and estimated latent e."""
    obs = {name: i for i, name in enumerate(true.observed)}

    def children_mask(structure):
        mask = np.zeros((len(obs), len(structure.latent)), dtype=int)
        for j, lat in enumerate(structure.latent):
            for child in structure.children(lat):
                if child in obs:
                    mask[obs[child], j] = 1
        return mask

    return children_mask(true).T @ children_mask(est)
