"""DAG accuracy figures on hand-made graphs whose FDR, TPR, FPR, SHD and NNZ are worked out by hand."""

import json

import numpy as np
import pytest

from latentsem.exceptions import LatentsemError, StructureError
from latentsem.metrics.dag import compare_edges, count_accuracy, encode_pdag


def dag(d, edges):
    B = np.zeros((d, d), dtype=int)
    for i, j in edges:
        B[i, j] = 1
    return B


def test_reversed_edge_counts_once_in_shd_and_in_fdr_fpr_not_tpr():
    # truth 0 -> 1 -> 2; estimate 0 -> 1, 2 -> 1 (the second edge reversed)
    acc = count_accuracy(dag(3, [(0, 1), (1, 2)]), dag(3, [(0, 1), (2, 1)]))
    # FDR = (1 reversed + 0 FP) / 2 predicted; TPR = 1 / 2; FPR = 1 / (3 - 2); SHD = 0 + 0 + 1.
    assert acc.to_dict() == {"fdr": 0.5, "tpr": 0.5, "fpr": 1.0, "shd": 1, "nnz": 2}


def test_extra_and_missing_edges():
    # truth 0 -> 1 -> 2 -> 3; estimate 0 -> 1, 0 -> 2 (extra), 2 -> 3; 1 -> 2 missing
    acc = count_accuracy(dag(4, [(0, 1), (1, 2), (2, 3)]), dag(4, [(0, 1), (0, 2), (2, 3)]))
    assert acc.fdr == pytest.approx(1 / 3)
    assert acc.tpr == pytest.approx(2 / 3)
    assert acc.fpr == pytest.approx(1 / 3)        # 1 false / (6 pairs - 3 true edges)
    assert (acc.shd, acc.nnz) == (2, 3)


def test_identical_and_empty_estimates():
    truth = dag(5, [(0, 1), (0, 2), (3, 4), (1, 4)])
    assert count_accuracy(truth, truth).to_dict() == {"fdr": 0.0, "tpr": 1.0, "fpr": 0.0, "shd": 0, "nnz": 4}
    empty = count_accuracy(truth, np.zeros((5, 5), dtype=int))
    assert empty.to_dict() == {"fdr": 0.0, "tpr": 0.0, "fpr": 0.0, "shd": 4, "nnz": 0}


def test_weighted_truth_and_boolean_estimate_are_accepted():
    truth = np.array([[0, 1.7, 0], [0, 0, -0.6], [0, 0, 0]])
    assert count_accuracy(truth, truth != 0).shd == 0


def test_undirected_edges_of_a_cpdag_are_counted_favourably():
    # truth 0 -> 1 -> 2; CPDAG estimate 0 - 1 (undirected), 1 -> 2
    D = dag(3, [(1, 2)])
    U = np.zeros((3, 3), dtype=bool)
    U[0, 1] = U[1, 0] = True
    B_est = encode_pdag(D, U)
    assert B_est.tolist() == [[0, 0, 0], [-1, 0, 1], [0, 0, 0]]
    assert count_accuracy(dag(3, [(0, 1), (1, 2)]), B_est).to_dict() == {
        "fdr": 0.0, "tpr": 1.0, "fpr": 0.0, "shd": 0, "nnz": 2}


def test_undirected_edge_outside_the_skeleton_is_a_false_positive():
    # truth 0 -> 1; estimate 0 - 2 undirected plus 0 -> 1
    B_est = dag(3, [(0, 1)])
    B_est[2, 0] = -1
    acc = count_accuracy(dag(3, [(0, 1)]), B_est)
    assert acc.to_dict() == {"fdr": 0.5, "tpr": 1.0, "fpr": 0.5, "shd": 1, "nnz": 2}


def test_invalid_estimates_raise():
    truth = dag(3, [(0, 1)])
    with pytest.raises(StructureError, match="directed cycle"):
        count_accuracy(truth, dag(3, [(0, 1), (1, 2), (2, 0)]))
    with pytest.raises(LatentsemError, match="binary"):
        count_accuracy(truth, 0.5 * dag(3, [(0, 1)]))
    twice = np.zeros((3, 3), dtype=int)
    twice[0, 1] = twice[1, 0] = -1
    with pytest.raises(LatentsemError, match="stores an undirected edge twice"):
        count_accuracy(truth, twice)
    with pytest.raises(LatentsemError, match="same shape"):
        count_accuracy(truth, np.zeros((4, 4), dtype=int))


def test_summary_and_json():
    acc = count_accuracy(dag(3, [(0, 1), (1, 2)]), dag(3, [(0, 1), (2, 1)]))
    assert acc.summary() == "SHD 1  TPR 0.500  FDR 0.500  FPR 1.000  NNZ 2"
    assert json.loads(acc.to_json())["shd"] == 1


def test_compare_edges_sorts_every_estimated_and_missed_edge():
    truth = dag(4, [(0, 1), (1, 2), (2, 3)])
    estimate = dag(4, [(0, 1), (2, 1), (0, 3)])
    kinds = compare_edges(truth, estimate)
    assert kinds.true_positive == ((0, 1),)
    assert kinds.reversed == ((2, 1),)
    assert kinds.false_positive == ((0, 3),)
    assert kinds.false_negative == ((2, 3),)
