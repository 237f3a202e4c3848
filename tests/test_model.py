"""The structure type (issue 2, requirement 3): validation, consistent extension, JSON."""

import json

import numpy as np
import pytest

from latentsem.exceptions import StructureError
from latentsem.graph import consistent_extensions, dag_to_cpdag, pdag_to_dag
from latentsem.model import Edge, Structure, simple_structure


def two_group_model():
    """L1 -> {L2, L3}: L2 and L3 form one group (shared items x4..x7), x8 is impure."""
    return Structure(
        ["x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8"],
        ["L1", "L2", "L3"],
        [Edge("L1", x) for x in ("x1", "x2", "x3", "x8")]
        + [Edge(lat, x) for lat in ("L2", "L3") for x in ("x4", "x5", "x6", "x7", "x8")]
        + [Edge("L1", "L2", "undirected"), Edge("L1", "L3", "undirected")],
        [["L1"], ["L2", "L3"]],
        {"n_samples": 500, "note": "kept"},
    )


def test_masks_follow_the_edges():
    s = two_group_model()
    mask = s.loading_mask()
    assert mask.shape == (8, 3)
    assert mask[:, 0].tolist() == [True, True, True, False, False, False, False, True]
    assert mask[7].tolist() == [True, True, True]  # x8 has every latent as parent
    U = s.latent_undirected()
    assert U.tolist() == [[False, True, True], [True, False, False], [True, False, False]]
    assert not s.latent_directed().any()


def test_json_round_trip_keeps_schema_and_metadata(tmp_path):
    s = two_group_model()
    path = tmp_path / "model.json"
    text = s.to_json(path)
    data = json.loads(text)
    assert list(data)[:4] == ["observed", "latent", "groups", "edges"]
    assert data["groups"] == [["L1"], ["L2", "L3"]]
    assert {"source": "L1", "target": "L2", "type": "undirected"} in data["edges"]
    assert data["n_samples"] == 500 and data["note"] == "kept"
    back = Structure.from_json(path)
    assert back == s and back.metadata == s.metadata
    assert Structure.from_json(text) == s


def test_consistent_extension_stays_in_the_class():
    s = two_group_model()
    dag = s.to_dag()
    assert dag.is_dag and not s.is_dag
    D = dag.latent_directed()
    # L2 and L3 are non-adjacent, so orienting both edges into L1 would make a new v-structure.
    assert not (D[1, 0] and D[2, 0])
    directed, undirected = dag_to_cpdag(D)
    assert np.array_equal(undirected, s.latent_undirected()) and not directed.any()
    assert set(dag.latent_order()) == {"L1", "L2", "L3"}


def test_every_enumerated_extension_has_the_cpdag_of_its_class():
    D = np.zeros((4, 4), dtype=bool)
    D[0, 2] = D[1, 2] = True  # v-structure 0 -> 2 <- 1
    U = np.zeros((4, 4), dtype=bool)
    U[2, 3] = U[3, 2] = True  # forced 2 -> 3 by Meek rule 1
    dags = consistent_extensions(D, U)
    assert len(dags) == 1 and dags[0][2, 3]
    assert np.array_equal(pdag_to_dag(D, U), dags[0])


@pytest.mark.parametrize("edges, groups, message", [
    ([Edge("x1", "L1")], (), "leaves an observed variable"),
    ([Edge("L1", "x1", "undirected")], (), "must join two latent variables"),
    ([Edge("L1", "zz")], (), "neither observed nor latent"),
    ([Edge("L1", "L2"), Edge("L2", "L1")], (), "more than one edge"),
    ([Edge("L1", "x1", "sideways")], (), "has type 'sideways'"),
    ([Edge("L1", "L2")], [["L1", "L2"]], "share a group but are adjacent"),
    ([Edge("L1", "x1")], [["L1"]], "must partition the latent variables"),
])
def test_invalid_structures_are_refused_with_one_line(edges, groups, message):
    with pytest.raises(StructureError, match=message) as info:
        Structure(["x1", "x2"], ["L1", "L2"], edges, groups)
    assert "\n" not in str(info.value)


def test_directed_latent_cycle_is_refused():
    with pytest.raises(StructureError, match="cycle"):
        Structure(["x1"], ["L1", "L2", "L3"],
                  [Edge("L1", "L2"), Edge("L2", "L3"), Edge("L3", "L1"), Edge("L1", "x1")])


def test_duplicate_names_and_bad_json_are_refused(tmp_path):
    with pytest.raises(StructureError, match=r"\['a'\] appear more than once"):
        Structure(["a", "b"], ["a"], [])
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StructureError, match="not valid JSON"):
        Structure.from_json(bad)
    with pytest.raises(StructureError, match="does not exist"):
        Structure.from_json(tmp_path / "missing.json")
    with pytest.raises(StructureError, match=r"lacks the keys \['latent'\]"):
        Structure.from_dict({"observed": [], "edges": []})


def test_from_masks_and_simple_structure_agree():
    s = simple_structure({"F1": ["a", "b", "c"], "F2": ["c", "d", "e"]}, [("F1", "F2", "directed")])
    rebuilt = Structure.from_masks(s.observed, s.latent, s.loading_mask(), s.latent_directed())
    assert rebuilt == s
    assert s.observed == ("a", "b", "c", "d", "e")  # a cross-loading item is listed once
    assert s.parents("c") == ["F1", "F2"] and s.children("F2") == ["c", "d", "e"]
    assert "F1 -> F2" in s.summary()


def test_replace_drops_groups_of_removed_latents():
    s = two_group_model()
    kept = s.replace(latent=["L1", "L2"], edges=[e for e in s.edges if "L3" not in (e.source, e.target)])
    assert kept.groups == (("L1",), ("L2",))
