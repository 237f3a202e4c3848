"""Skeleton F1 and SHD between CPDAGs over all variables, after matching latents.

Expected numbers are worked out by hand in the comments. Reminder of the CPDAG
facts used: a latent with no parents whose items have no other parent is a
tree node, so those edges are reversible (undirected); a v-structure a -> c <- b
is compelled, and Meek's R1 then orients c -> d for every d adjacent to c but
not to a (or b).
"""

import json

import numpy as np
import pytest

from latentsem.exceptions import StructureError
from latentsem.graph import dag_to_cpdag
from latentsem.metrics.latent import compare_structures, cpdag_marks, match_latents, shd, skeleton_f1
from latentsem.model import Edge, Structure, simple_structure
from latentsem.simulate.gnfm import random_gnfm


def renamed(structure, mapping, order):
    """``structure`` with latents renamed by ``mapping`` and listed in ``order`` (new names)."""
    edges = [Edge(mapping.get(e.source, e.source), mapping.get(e.target, e.target), e.type) for e in structure.edges]
    groups = [[mapping[n] for n in g] for g in structure.groups]
    return Structure(structure.observed, order, edges, groups)


def as_lges_output(dag):
    """What LGES returns: latent -> observed edges plus the CPDAG among latents."""
    latent = list(dag.latent)
    directed, undirected = dag_to_cpdag(dag.latent_directed())
    edges = [e for e in dag.edges if e.target in set(dag.observed)]
    edges += [Edge(latent[i], latent[j]) for i, j in zip(*np.nonzero(directed))]
    edges += [Edge(latent[i], latent[j], "undirected") for i, j in zip(*np.nonzero(undirected)) if i < j]
    return Structure(dag.observed, dag.latent, edges, dag.groups)


@pytest.mark.parametrize("seed", range(20))
def test_permuted_latent_names_give_perfect_scores(seed):
    truth = random_gnfm(seed)
    rng = np.random.default_rng(seed)
    new_names = [f"F{k}" for k in rng.permutation(len(truth.latent))]
    mapping = dict(zip(truth.latent, new_names))
    est = renamed(as_lges_output(truth), mapping, list(rng.permutation(new_names)))
    result = compare_structures(truth, est)
    assert (result.f1, result.precision, result.recall, result.shd) == (1.0, 1.0, 1.0, 0)
    # Members of a two-latent group are interchangeable (same parents and children), so the
    # matching is checked up to the group: each estimated latent maps into its own group.
    group_of = {name: frozenset(g) for g in truth.groups for name in g}
    inverse = {v: k for k, v in mapping.items()}
    assert all(group_of[t] == group_of[inverse[e]] for e, t in result.matching.items())
    assert result.extra_latents == [] and result.missing_latents == []


def test_missing_latent():
    # Truth: L1 -> X1..X4, L2 -> X5..X7, L1 -> L2 (a tree: every CPDAG edge undirected), 8 edges.
    # Estimate: one latent A -> X1..X7 (a star, all undirected), 7 edges.
    # A matches L1 (4 shared items vs 3 with L2); L2 is missing.
    # Shared skeleton edges: L1-X1..X4 = 4 -> precision 4/7, recall 4/8, F1 = 2(4/7)(1/2)/(4/7 + 1/2) = 8/15.
    # SHD: extra L1-X5..X7 (3) + missing L2-X5..X7 (3) + missing L1-L2 (1) = 7.
    truth = simple_structure({"L1": ["X1", "X2", "X3", "X4"], "L2": ["X5", "X6", "X7"]}, [("L1", "L2", "directed")])
    est = simple_structure({"A": [f"X{i}" for i in range(1, 8)]})
    result = compare_structures(truth, est)
    assert result.matching == {"A": "L1"}
    assert result.missing_latents == ["L2"] and result.extra_latents == []
    assert result.precision == pytest.approx(4 / 7)
    assert result.recall == pytest.approx(1 / 2)
    assert result.f1 == pytest.approx(8 / 15)
    assert result.shd == 7
    assert (result.true_edges, result.estimated_edges, result.shared_edges) == (8, 7, 4)


def test_extra_latent():
    # Truth: L1 -> X1..X6 (6 undirected edges). Estimate: A -> X1..X4, B -> X5, X6, A -> B (tree, 7 edges).
    # A matches L1 (4 shared); B is an extra node.
    # Shared: L1-X1..X4 = 4 -> precision 4/7, recall 4/6, F1 = 2(4/7)(2/3)/(4/7 + 2/3) = 8/13.
    # SHD: missing L1-X5, L1-X6 (2) + extra B-X5, B-X6 (2) + extra A-B (1) = 5.
    truth = simple_structure({"L1": [f"X{i}" for i in range(1, 7)]})
    est = simple_structure({"A": ["X1", "X2", "X3", "X4"], "B": ["X5", "X6"]}, [("A", "B", "directed")])
    result = compare_structures(truth, est)
    assert result.matching == {"A": "L1"}
    assert result.extra_latents == ["B"] and result.missing_latents == []
    assert result.precision == pytest.approx(4 / 7)
    assert result.recall == pytest.approx(2 / 3)
    assert result.f1 == pytest.approx(8 / 13)
    assert result.shd == 5


def v_structure_model(flip):
    # Groups {L1, L2} (pure X1..X4, parents both), {L3} (X5..X7), {L4} (X8..X10);
    # L1 -> L4 <- L2, L3 -> L4. With flip, L1 -> L4 becomes L4 -> L1.
    clusters = {"L1": ["X1", "X2", "X3", "X4"], "L2": ["X1", "X2", "X3", "X4"],
                "L3": ["X5", "X6", "X7"], "L4": ["X8", "X9", "X10"]}
    first = ("L4", "L1", "directed") if flip else ("L1", "L4", "directed")
    return simple_structure(clusters, [first, ("L2", "L4", "directed"), ("L3", "L4", "directed")])


def test_flipped_latent_edge_in_a_v_structure_costs_one():
    # Truth CPDAG: v-structures at L4 (parents L1, L2, L3 pairwise non-adjacent) and at X1..X4
    # (L1 -> Xi <- L2) are compelled; L4 -> X8..X10 by R1; L3 - X5..X7 stay undirected. 17 edges.
    # Estimate: L2 -> L4 <- L3 is still a v-structure, and R1 (L2 -> L4 - L1, L2 not adjacent to L1)
    # compels L4 -> L1; everything else is as in the truth. Only the pair L1, L4 differs: SHD 1.
    truth, est = v_structure_model(False), v_structure_model(True)
    result = compare_structures(truth, est)
    assert result.shd == 1
    assert (result.f1, result.true_edges) == (1.0, 17)
    assert shd(truth, est) == 1 and skeleton_f1(truth, est) == {"f1": 1.0, "precision": 1.0, "recall": 1.0}


def test_directed_against_undirected_edges_count_one_each():
    # Truth: L1 -> L3 <- L2 (v-structure), L1 -> X1..X3, L2 -> X4..X6, L3 -> X7..X9.
    #   CPDAG: L1 -> L3, L2 -> L3 compelled; L3 -> X7..X9 by R1; L1-Xi and L2-Xi undirected.
    # Estimate: the chain L1 -> L3 -> L2 with the same items: a tree, so every edge is undirected.
    # Same skeleton (F1 = 1); marks differ on L1-L3, L2-L3 and L3-X7..X9: SHD = 2 + 3 = 5.
    clusters = {"L1": ["X1", "X2", "X3"], "L2": ["X4", "X5", "X6"], "L3": ["X7", "X8", "X9"]}
    truth = simple_structure(clusters, [("L1", "L3", "directed"), ("L2", "L3", "directed")])
    est = simple_structure(clusters, [("L1", "L3", "directed"), ("L3", "L2", "directed")])
    result = compare_structures(truth, est)
    assert result.f1 == 1.0
    assert result.shd == 5


def test_cpdag_estimate_is_read_through_a_consistent_extension():
    # An LGES-style estimate with the undirected latent edge L1 - L2 (truth L1 -> L2, a tree):
    # both CPDAGs are fully undirected, so SHD 0; stating the edge as directed changes nothing either.
    clusters = {"L1": ["X1", "X2", "X3"], "L2": ["X4", "X5", "X6"]}
    truth = simple_structure(clusters, [("L1", "L2", "directed")])
    for kind in ("undirected", "directed"):
        assert compare_structures(truth, simple_structure(clusters, [("L1", "L2", kind)])).shd == 0
    marks = cpdag_marks(truth)
    assert (marks == marks.T).all() and marks.sum() == 2 * 7


def test_ties_in_shared_items_are_broken_by_the_rest_of_the_graph():
    # L1 and L2 both cause X1, X2 (a tie on shared items); only L1 -> L3. In the estimate the
    # latent playing L1's part is B, listed second, so index order alone would match A to L1.
    truth = Structure(["X1", "X2", "X3", "X4", "X5"], ["L1", "L2", "L3"],
                      [Edge(l, x) for l in ("L1", "L2") for x in ("X1", "X2")]
                      + [Edge("L1", "L3")] + [Edge("L3", x) for x in ("X3", "X4", "X5")])
    est = Structure(["X1", "X2", "X3", "X4", "X5"], ["A", "B", "C"],
                    [Edge(l, x) for l in ("A", "B") for x in ("X1", "X2")]
                    + [Edge("B", "C")] + [Edge("C", x) for x in ("X3", "X4", "X5")])
    assert match_latents(truth, est) == {"A": "L2", "B": "L1", "C": "L3"}
    assert compare_structures(truth, est).shd == 0


@pytest.mark.parametrize("seed", range(10))
def test_dropping_one_loading_lowers_recall_only(seed):
    truth = random_gnfm(seed)
    dropped = next(e for e in truth.edges if e.target in set(truth.observed))
    est = truth.replace(edges=[e for e in truth.edges if e != dropped], groups=())
    result = compare_structures(truth, est)
    n_edges = len(truth.edges)
    assert result.precision == 1.0
    assert result.recall == pytest.approx((n_edges - 1) / n_edges)
    assert result.shd >= 1


def test_different_items_are_refused():
    a = simple_structure({"L1": ["x1", "x2"]})
    b = simple_structure({"L1": ["x1", "x3"]})
    with pytest.raises(StructureError, match=r"only in the truth: \['x2'\]; only in the estimate: \['x3'\]"):
        compare_structures(a, b)


def test_result_summary_and_json():
    truth = simple_structure({"L1": [f"X{i}" for i in range(1, 7)]})
    est = simple_structure({"A": ["X1", "X2", "X3", "X4"], "B": ["X5", "X6"]}, [("A", "B", "directed")])
    result = compare_structures(truth, est)
    data = json.loads(result.to_json())
    assert data["shd"] == 5 and data["matching"] == {"A": "L1"} and data["extra_latents"] == ["B"]
    text = result.summary()
    assert "SHD between CPDAGs 5" in text and "A->L1" in text and "extra estimated latents: B" in text


# ------------------------------------------------------- group-level CPDAG
def group_into_or_out_of(out_of_group):
    """A two-latent group {L1, L2} (4 pure children) joined to L3 (3 pure children), either direction."""
    observed = [f"X{i}" for i in range(1, 8)]
    edges = [Edge(lat, f"X{i}") for lat in ("L1", "L2") for i in range(1, 5)]
    edges += [Edge("L3", f"X{i}") for i in range(5, 8)]
    edges += [Edge(lat, "L3") if out_of_group else Edge("L3", lat) for lat in ("L1", "L2")]
    return Structure(observed, ["L1", "L2", "L3"], edges, [["L1", "L2"], ["L3"]])


def test_orientation_at_a_two_latent_group_is_not_identified_and_costs_no_group_level_shd():
    # Over single latents, {L1, L2} -> L3 is a v-structure (compelled) and L3 -> {L1, L2} a tree,
    # so the latent-level CPDAGs differ on L1-L3, L2-L3 and on L3's items, which R1 orients only in
    # the first: 2 + 3 = 5. Over groups both are the tree G - L3, hence SHD 0.
    out_of, into = group_into_or_out_of(True), group_into_or_out_of(False)
    assert compare_structures(out_of, into, level="latent").shd == 5
    assert compare_structures(out_of, into).shd == 0
    assert compare_structures(out_of, into).level == "group"
    # Why the group level is right: the two generate the same item covariances (a rotation of
    # the group's latents), so the maximum likelihood of either on the other's population
    # covariance is the saturated one.
    from latentsem.score import score_ML
    from latentsem.simulate.gnfm import population_covariance

    for truth, other in ((out_of, into), (into, out_of)):
        S = population_covariance(truth, weights={(e.source, e.target): 1.0 + 0.1 * k for k, e in enumerate(truth.edges)},
                                  noise_var={v: 0.5 for v in truth.observed + truth.latent})
        d = np.sqrt(np.diag(S))
        R = S / np.outer(d, d)
        saturated = -0.5 * 1000 * (np.linalg.slogdet(R)[1] + len(R))
        assert score_ML(other, R, 1000, random_state=0).log_likelihood == pytest.approx(saturated, abs=1e-6)


def test_group_level_cpdag_keeps_group_level_v_structures():
    # G = {L1, L2} -> L3 <- L4 with G and L4 non-adjacent: a v-structure between groups, compelled
    # at both levels; reversing G's edge (L3 -> G) removes it, which the group level does count.
    observed = [f"X{i}" for i in range(1, 11)]
    def build(out_of_group):
        edges = [Edge(lat, f"X{i}") for lat in ("L1", "L2") for i in range(1, 5)]
        edges += [Edge("L3", f"X{i}") for i in range(5, 8)] + [Edge("L4", f"X{i}") for i in range(8, 11)]
        edges += [Edge(lat, "L3") if out_of_group else Edge("L3", lat) for lat in ("L1", "L2")]
        edges += [Edge("L4", "L3")]
        return Structure(observed, ["L1", "L2", "L3", "L4"], edges, [["L1", "L2"], ["L3"], ["L4"]])
    marks = cpdag_marks(build(True))
    index = {name: i for i, name in enumerate(observed + ["L1", "L2", "L3", "L4"])}
    for lat in ("L1", "L2", "L4"):
        assert marks[index[lat], index["L3"]] == 1 and marks[index["L3"], index[lat]] == 0
    assert compare_structures(build(True), build(False)).shd > 0


def test_structure_that_breaks_its_groups_is_read_over_single_latents():
    # L1 -> L3 -> L2 with {L1, L2} declared a group: no quotient DAG, so the latent level is used.
    base = group_into_or_out_of(True)
    edges = [e for e in base.edges if e.target != "L3"] + [Edge("L1", "L3"), Edge("L3", "L2")]
    mixed = Structure(base.observed, base.latent, edges, base.groups)
    assert (cpdag_marks(mixed) == cpdag_marks(mixed, level="latent")).all()
    with pytest.raises(ValueError, match="level"):
        cpdag_marks(base, level="groups")
