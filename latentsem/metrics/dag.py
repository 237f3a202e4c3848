"""Accuracy of an estimated DAG (or CPDAG) against the true DAG, as the NOTEARS authors count it.

:func:`count_accuracy` reproduces ``count_accuracy(B_true, B_est)`` of the
authors' public ``utils.py`` (Zheng et al. 2018) figure for figure:

* ``B_est`` is a DAG (entries 0/1, ``[i, j] == 1`` for i -> j) or a CPDAG in the
  authors' encoding: a directed edge i -> j is ``[i, j] == 1``; an undirected
  edge i - j is ``-1`` in exactly one of ``[i, j]``, ``[j, i]``
  (:func:`encode_pdag` builds it from a PDAG ``(D, U)``);
* undirected edges are treated favourably: one counts as a true positive when
  the true skeleton has it, whatever the true direction;
* a directed edge whose reverse is a true edge is "reversed": it counts in FDR
  and FPR, not in TPR, and once in SHD;
* ``FDR = (reversed + false positives) / predicted``,
  ``TPR = true positives / true edges``,
  ``FPR = (reversed + false positives) / (d(d-1)/2 - true edges)``,
  ``SHD = extra + missing skeleton edges + reversed``, ``NNZ = predicted``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from ..exceptions import LatentsemError, StructureError
from ..graph import has_directed_cycle


@dataclass(frozen=True)
class DagAccuracy:
    """Edge-level accuracy of an estimate; see the module docstring for the definitions."""

    fdr: float
    tpr: float
    fpr: float
    shd: int
    nnz: int

    def to_dict(self):
        """The five figures under the authors' keys ``fdr, tpr, fpr, shd, nnz``."""
        return asdict(self)

    def to_json(self):
        """The figures as a JSON object (text)."""
        return json.dumps(self.to_dict())

    def summary(self):
        """One line: ``SHD 3  TPR 0.900  FDR 0.100  FPR 0.020  NNZ 20``."""
        return f"SHD {self.shd}  TPR {self.tpr:.3f}  FDR {self.fdr:.3f}  FPR {self.fpr:.3f}  NNZ {self.nnz}"


def encode_pdag(D, U=None):
    """The authors' {0, 1, -1} matrix of a PDAG: 1 for i -> j, -1 once (lower triangle) per undirected i - j."""
    D = np.asarray(D) != 0
    out = D.astype(int)
    if U is not None:
        U = np.asarray(U) != 0
        lower = np.tril(U | U.T, k=-1)
        out[lower] = -1
    return out


def _check_estimate(B_est):
    """The authors' input checks: a 0/1 DAG, or a {0, 1, -1} CPDAG with each undirected edge stored once."""
    if (B_est == -1).any():
        if not np.isin(B_est, (0, 1, -1)).all():
            raise LatentsemError("B_est must take values in {0, 1, -1} (-1 marks an undirected edge).")
        if ((B_est == -1) & (B_est.T == -1)).any():
            raise LatentsemError("B_est stores an undirected edge twice; put -1 in only one of [i, j] and [j, i].")
    else:
        if not np.isin(B_est, (0, 1)).all():
            raise LatentsemError("B_est must be binary (0/1); threshold the weights first, e.g. B = W != 0.")
        if has_directed_cycle(B_est == 1):
            raise StructureError("B_est has a directed cycle; count_accuracy needs a DAG (or a CPDAG).")


def count_accuracy(B_true, B_est):
    """FDR, TPR, FPR, SHD and NNZ of ``B_est`` against the true DAG ``B_true``.

    Parameters
    ----------
    B_true : array, shape (d, d)
        True DAG, nonzero ``[i, j]`` for i -> j (weights are fine).
    B_est : array, shape (d, d)
        Estimated DAG with entries in {0, 1}, or CPDAG in {0, 1, -1}
        (see :func:`encode_pdag`). Booleans are accepted.

    Returns
    -------
    DagAccuracy
    """
    B_true = np.asarray(B_true) != 0
    B_est = np.asarray(B_est)
    if B_est.dtype == bool:
        B_est = B_est.astype(int)
    if B_true.ndim != 2 or B_true.shape[0] != B_true.shape[1] or B_est.shape != B_true.shape:
        raise LatentsemError(f"B_true and B_est must be square matrices of the same shape; got {B_true.shape} "
                             f"and {B_est.shape}.")
    _check_estimate(B_est)
    d = B_true.shape[0]
    # Linear indices of the nonzeros, as in the authors' code.
    pred_und = np.flatnonzero(B_est == -1)
    pred = np.flatnonzero(B_est == 1)
    cond = np.flatnonzero(B_true)
    cond_reversed = np.flatnonzero(B_true.T)
    cond_skeleton = np.concatenate([cond, cond_reversed])
    true_pos = np.intersect1d(pred, cond, assume_unique=True)
    true_pos_und = np.intersect1d(pred_und, cond_skeleton, assume_unique=True)  # undirected: favourable
    false_pos = np.setdiff1d(pred, cond_skeleton, assume_unique=True)
    false_pos_und = np.setdiff1d(pred_und, cond_skeleton, assume_unique=True)
    extra = np.setdiff1d(pred, cond, assume_unique=True)
    reverse = np.intersect1d(extra, cond_reversed, assume_unique=True)
    n_true_pos = len(true_pos) + len(true_pos_und)
    n_false = len(reverse) + len(false_pos) + len(false_pos_und)
    pred_size = len(pred) + len(pred_und)
    cond_neg_size = 0.5 * d * (d - 1) - len(cond)
    # SHD on the lower triangle of the symmetrised graphs: extra + missing skeleton edges, plus reversals.
    pred_lower = np.flatnonzero(np.tril(B_est + B_est.T))
    cond_lower = np.flatnonzero(np.tril(B_true.astype(int) + B_true.T))
    extra_lower = np.setdiff1d(pred_lower, cond_lower, assume_unique=True)
    missing_lower = np.setdiff1d(cond_lower, pred_lower, assume_unique=True)
    return DagAccuracy(
        fdr=n_false / max(pred_size, 1),
        tpr=n_true_pos / max(len(cond), 1),
        fpr=n_false / max(cond_neg_size, 1),
        shd=int(len(extra_lower) + len(missing_lower) + len(reverse)),
        nnz=int(pred_size),
    )


@dataclass(frozen=True)
class EdgeComparison:
    """The edges of an estimated DAG sorted against the truth, as ``(source, target)`` index pairs.

    ``true_positive``: estimated and true in that direction; ``reversed``: estimated
    i -> j where the truth has j -> i; ``false_positive``: estimated, absent from the
    true skeleton; ``false_negative``: true edges whose pair the estimate leaves empty.
    """

    true_positive: tuple
    reversed: tuple
    false_positive: tuple
    false_negative: tuple


def compare_edges(B_true, B_est):
    """Sort the edges of the estimated DAG ``B_est`` against the true DAG ``B_true`` (see :class:`EdgeComparison`)."""
    T = np.asarray(B_true) != 0
    E = np.asarray(B_est) != 0
    if T.shape != E.shape:
        raise LatentsemError(f"B_true and B_est must have the same shape; got {T.shape} and {E.shape}.")

    def pairs(M):
        return tuple((int(i), int(j)) for i, j in zip(*np.nonzero(M)))

    return EdgeComparison(
        true_positive=pairs(E & T),
        reversed=pairs(E & ~T & T.T),
        false_positive=pairs(E & ~T & ~T.T),
        false_negative=pairs(T & ~E & ~E.T),
    )
