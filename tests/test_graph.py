"""Graph helpers: the CPDAG of a DAG on textbook examples and against causal-learn."""

import numpy as np
import pytest

from latentsem.graph import dag_to_cpdag, has_directed_cycle, pdag_to_dag, skeleton, topological_order


def dag(n, edges):
    D = np.zeros((n, n), dtype=bool)
    for i, j in edges:
        D[i, j] = True
    return D


def as_sets(directed, undirected):
    arrows = {(int(i), int(j)) for i, j in zip(*np.nonzero(directed))}
    lines = {(int(i), int(j)) for i, j in zip(*np.nonzero(undirected)) if i < j}
    return arrows, lines


def test_v_structure_stays_directed():
    # 0 -> 2 <- 1, 0 and 1 non-adjacent: both edges are compelled.
    arrows, lines = as_sets(*dag_to_cpdag(dag(3, [(0, 2), (1, 2)])))
    assert arrows == {(0, 2), (1, 2)}
    assert lines == set()


def test_chain_and_fork_become_undirected():
    # 0 -> 1 -> 2 and 1 <- 0 -> 2 ... no v-structure: every edge reversible.
    for edges in ([(0, 1), (1, 2)], [(1, 0), (1, 2)]):
        arrows, lines = as_sets(*dag_to_cpdag(dag(3, edges)))
        assert arrows == set()
        assert lines == {(0, 1), (1, 2)}


def test_meek_rule_1_orients_away_from_v_structure():
    # 0 -> 2 <- 1 and 2 -> 3: 3 is adjacent to neither 0 nor 1, so 2 - 3 must be 2 -> 3 (R1).
    arrows, lines = as_sets(*dag_to_cpdag(dag(4, [(0, 2), (1, 2), (2, 3)])))
    assert arrows == {(0, 2), (1, 2), (2, 3)}
    assert lines == set()


def test_meek_rule_2_avoids_cycle():
    # 0 -> 2 <- 1 (v-structure), 2 -> 3 by R1, and edge 0 -> 3 (0 adjacent to 3).
    # 0 - 3: R2 with 0 -> 2 -> 3 orients 0 -> 3.
    arrows, lines = as_sets(*dag_to_cpdag(dag(4, [(0, 2), (1, 2), (2, 3), (0, 3)])))
    assert arrows == {(0, 2), (1, 2), (2, 3), (0, 3)}
    assert lines == set()


def test_meek_rule_3():
    # 1 -> 3 <- 2 with 1, 2 non-adjacent, and 0 adjacent to 1, 2, 3 (0 -> 1, 0 -> 2, 0 -> 3).
    # 0 - 1 and 0 - 2 stay undirected; 0 - 3 is oriented 0 -> 3 by R3.
    arrows, lines = as_sets(*dag_to_cpdag(dag(4, [(0, 1), (0, 2), (0, 3), (1, 3), (2, 3)])))
    assert arrows == {(1, 3), (2, 3), (0, 3)}
    assert lines == {(0, 1), (0, 2)}


def test_complete_dag_is_fully_undirected():
    D = np.triu(np.ones((4, 4), dtype=bool), k=1)
    directed, undirected = dag_to_cpdag(D)
    assert not directed.any()
    assert (undirected == (D | D.T)).all()


def test_cpdag_keeps_skeleton_and_extends_back_to_same_class():
    rng = np.random.default_rng(0)
    for _ in range(30):
        D = np.triu(rng.random((7, 7)) < 0.35, k=1)
        directed, undirected = dag_to_cpdag(D)
        assert (skeleton(directed, undirected) == skeleton(D)).all()
        assert not (directed & undirected).any()
        # A consistent extension of the CPDAG has the same CPDAG (same Markov equivalence class).
        extension = pdag_to_dag(directed, undirected)
        assert extension is not None and not has_directed_cycle(extension)
        again = dag_to_cpdag(extension)
        assert (again[0] == directed).all() and (again[1] == undirected).all()


def test_matches_causal_learn_dag2cpdag():
    pytest.importorskip("causallearn")
    from causallearn.graph.Dag import Dag
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.utils.DAG2CPDAG import dag2cpdag

    rng = np.random.default_rng(1)
    for _ in range(20):
        n = 8
        order = rng.permutation(n)
        D = np.zeros((n, n), dtype=bool)
        upper = np.triu(rng.random((n, n)) < 0.3, k=1)
        D[np.ix_(order, order)] = upper  # a DAG whose topological order is not the index order
        nodes = [GraphNode(f"V{i}") for i in range(n)]
        G = Dag(nodes)
        for i, j in zip(*np.nonzero(D)):
            G.add_directed_edge(nodes[i], nodes[j])
        ref = dag2cpdag(G).graph  # i -> j: [j, i] == 1 and [i, j] == -1; i - j: both -1
        ref_directed = (ref.T == 1) & (ref == -1)
        ref_undirected = (ref == -1) & (ref.T == -1)
        directed, undirected = dag_to_cpdag(D)
        assert (directed == ref_directed).all()
        assert (undirected == ref_undirected).all()


def test_topological_order_and_cycle():
    D = dag(3, [(2, 1), (1, 0)])
    assert topological_order(D) == [2, 1, 0]
    D[0, 2] = True
    assert has_directed_cycle(D)
