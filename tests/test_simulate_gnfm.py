"""Random generalized N factor models: Definition 2, parameters, data, CLI and the bundled example."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from latentsem.cli import main
from latentsem.exceptions import LatentsemError, StructureError
from latentsem.model import Edge, Structure, simple_structure
from latentsem.simulate.gnfm import (
    bundled_example, check_gnfm, edge_weights, gnfm_violations, make_gnfm_dataset, noise_variances,
    population_covariance, random_gnfm, simulate_data,
)


# ------------------------------------------------------------- graphs
@pytest.mark.parametrize("seed", range(100))
def test_random_graphs_satisfy_definition_2(seed):
    s = random_gnfm(seed)
    assert check_gnfm(s) is s
    assert all(len(g) in (1, 2) for g in s.groups)
    assert 3 <= len(s.groups) <= 4
    assert s.latent == tuple(f"L{i + 1}" for i in range(len(s.latent)))
    assert s.observed == tuple(f"X{i + 1}" for i in range(len(s.observed)))
    # Impure items: parents are two whole groups.
    groups = {frozenset(g) for g in s.groups}
    impure = [x for x in s.observed if frozenset(s.parents(x)) not in groups]
    assert 1 <= len(impure) <= 3
    for x in impure:
        parents = set(s.parents(x))
        covering = [g for g in groups if g <= parents]
        assert len(covering) == 2 and set().union(*covering) == parents


def test_sizes_match_the_paper_on_average():
    # Section 5.1: "on average, each ground truth graph contains 20 variables and 5 of them are latent".
    sizes = np.array([(len(s.latent), len(s.observed)) for s in map(random_gnfm, range(200))])
    assert 4.5 <= sizes[:, 0].mean() <= 6.0
    assert 18.0 <= sizes.sum(axis=1).mean() <= 22.0


def test_group_edges_apply_to_every_member_and_weights_follow_the_authors():
    weights = []
    for seed in range(30):
        s = random_gnfm(seed)
        index = {name: k for k, g in enumerate(s.groups) for name in g}
        group_edges = {(index[e.source], index[e.target]) for e in s.edges if e.source in index and e.target in index}
        for a, b in group_edges:  # A -> B means every member of A -> every member of B
            assert all(t in s.children(src) for src in s.groups[a] for t in s.groups[b])
        w = edge_weights(s)
        assert set(w) == {(e.source, e.target) for e in s.edges}
        weights += list(w.values())
        v = np.array(list(noise_variances(s).values()))
        assert len(v) == len(s.latent) + len(s.observed)
        assert v.min() >= 0.1 and v.max() <= 1.0
    weights = np.abs(weights)
    assert weights.min() >= 1.0 and weights.max() <= 5.0
    assert np.mean(np.array(weights) < 3.0) == pytest.approx(0.5, abs=0.08)  # |w| ~ U(1, 5)


def test_same_seed_same_graph_and_data():
    a, ta = make_gnfm_dataset(7, 50)
    b, tb = make_gnfm_dataset(7, 50)
    c, tc = make_gnfm_dataset(8, 50)
    assert ta == tb and ta.metadata == tb.metadata
    pd.testing.assert_frame_equal(a, b)
    assert ta.metadata != tc.metadata
    assert ta.metadata["simulation"] == {"n": 50, "noise": "gaussian", "nonlinearity": None}


def test_truth_json_round_trip_keeps_parameters():
    _, truth = make_gnfm_dataset(3, 10)
    back = Structure.from_json(truth.to_json())
    assert back == truth
    np.testing.assert_allclose(population_covariance(back), population_covariance(truth), rtol=1e-15)


def test_parameter_errors_are_one_line():
    with pytest.raises(LatentsemError, match=r"The 'n_groups' parameter of random_gnfm must be a pair of ints 1 <= lo <= hi\. Got \(4, 3\) instead\."):
        random_gnfm(0, n_groups=(4, 3))
    with pytest.raises(LatentsemError, match="'two_latent_share' parameter"):
        random_gnfm(0, two_latent_share=1.5)
    s = random_gnfm(0)
    with pytest.raises(LatentsemError, match="'noise' parameter of simulate_data must be one of"):
        simulate_data(s, n=5, noise="cauchy")


# ------------------------------------------------------------ validator
def test_validator_accepts_the_paper_figure_2_pattern():
    # Groups {L1}, {L2, L3}: L1 -> L2, L1 -> L3; two pure children of L1, four of {L2, L3}, one impure.
    s = Structure(
        [f"X{i}" for i in range(1, 8)], ["L1", "L2", "L3"],
        [Edge("L1", "L2"), Edge("L1", "L3"), Edge("L1", "X1"), Edge("L1", "X2")]
        + [Edge(l, f"X{i}") for l in ("L2", "L3") for i in range(3, 7)]
        + [Edge(l, "X7") for l in ("L1", "L2", "L3")],
        groups=[["L1"], ["L2", "L3"]],
    )
    assert gnfm_violations(s) == []


def test_validator_names_each_violated_clause():
    base_edges = [Edge("L1", "X1"), Edge("L1", "X2"), Edge("L1", "L2")]
    pure_pair = [Edge(l, f"X{i}") for l in ("L2", "L3") for i in range(3, 7)]
    observed = [f"X{i}" for i in range(1, 8)]
    # (i): group {L2, L3} has only 3 pure children (X3, X4, X5).
    s = Structure(observed[:5], ["L1", "L2", "L3"], base_edges + [Edge("L1", "L3")] + pure_pair[:3] + pure_pair[4:7],
                  groups=[["L1"], ["L2", "L3"]])
    assert gnfm_violations(s) == ["group ['L2', 'L3'] has 3 pure children, needs 4 (Definition 2 (i))"]
    # (ii): L1 causes L2 but not L3.
    s = Structure(observed[:6], ["L1", "L2", "L3"], base_edges + pure_pair, groups=[["L1"], ["L2", "L3"]])
    problems = gnfm_violations(s)
    assert problems == ["['L1'] relate to only some members of group ['L2', 'L3'] (Definition 2 (ii))"]
    with pytest.raises(StructureError, match=r"^The structure is not a generalized N factor model: .*\(ii\)"):
        check_gnfm(s)
    # (ii) for an observed child of only one member.
    s = Structure(observed, ["L1", "L2", "L3"], base_edges + [Edge("L1", "L3")] + pure_pair + [Edge("L2", "X7")],
                  groups=[["L1"], ["L2", "L3"]])
    assert gnfm_violations(s) == ["['X7'] relate to only some members of group ['L2', 'L3'] (Definition 2 (ii))"]
    # (i) with single latents: a one-factor model with only one item per factor.
    s = simple_structure({"F1": ["a", "b"], "F2": ["c"]}, [("F1", "F2", "directed")])
    assert gnfm_violations(s) == ["group ['F2'] has 1 pure children, needs 2 (Definition 2 (i))"]
    # Undirected latent edges are not a DAG.
    s = simple_structure({"F1": ["a", "b"], "F2": ["c", "d"]}, [("F1", "F2", "undirected")])
    assert "undirected" in gnfm_violations(s)[0]


# ----------------------------------------------------------------- data
def test_empirical_covariance_matches_population_covariance():
    rng = np.random.default_rng(2024)
    for seed in (0, 1):
        s = random_gnfm(seed)
        X = simulate_data(s, n=200_000, random_state=rng).to_numpy()
        S = np.cov(X, rowvar=False, bias=True)
        P = population_covariance(s)
        scale = np.sqrt(np.outer(np.diag(P), np.diag(P)))
        assert np.max(np.abs(S - P) / scale) < 2e-2  # relative to the product of standard deviations
        assert np.max(np.abs(np.diag(S) / np.diag(P) - 1)) < 2e-2


def test_population_covariance_by_hand():
    # L1 -> L2 (b = 2); L1 -> x1 (1.5), L2 -> x2 (-1); variances 0.5, 0.2, 0.1, 0.3.
    s = simple_structure({"L1": ["x1"], "L2": ["x2"]}, [("L1", "L2", "directed")])
    w = {("L1", "L2"): 2.0, ("L1", "x1"): 1.5, ("L2", "x2"): -1.0}
    v = {"L1": 0.5, "L2": 0.2, "x1": 0.1, "x2": 0.3}
    # var L1 = 0.5, var L2 = 4 * 0.5 + 0.2 = 2.2, cov(L1, L2) = 1.0
    # var x1 = 2.25 * 0.5 + 0.1 = 1.225, var x2 = 2.2 + 0.3 = 2.5, cov(x1, x2) = 1.5 * -1 * 1.0 = -1.5
    np.testing.assert_allclose(population_covariance(s, w, v), [[1.225, -1.5], [-1.5, 2.5]], rtol=1e-12)


@pytest.mark.parametrize("noise", ["uniform", "laplace"])
def test_non_gaussian_noise_has_the_same_variance(noise):
    s = random_gnfm(4)
    X = simulate_data(s, n=200_000, noise=noise, random_state=5, include_latent=True)
    root = s.latent[0]  # L1 is a root: its values are its noise
    var = noise_variances(s)[root]
    assert X[root].var() == pytest.approx(var, rel=2e-2)
    kurtosis = ((X[root] - X[root].mean()) ** 4).mean() / X[root].var() ** 2 - 3
    assert kurtosis == pytest.approx({"uniform": -1.2, "laplace": 3.0}[noise], abs=0.25)
    if noise == "uniform":
        assert X[root].abs().max() <= np.sqrt(3 * var) + 1e-12


def test_leaky_relu_keeps_positive_and_shrinks_negative_values():
    s = simple_structure({"L1": ["x1", "x2"]})
    w = {("L1", "x1"): 2.0, ("L1", "x2"): -3.0}
    v = {"L1": 1.0, "x1": 0.5, "x2": 0.5}
    lin = simulate_data(s, w, 2000, noise_var=v, random_state=11, include_latent=True)
    lr = simulate_data(s, w, 2000, noise_var=v, random_state=11, include_latent=True, nonlinearity="leaky_relu")

    def leaky(x):  # LR(x) = max(0.8 x, x): x for x > 0, 0.8 x for x < 0
        return np.maximum(0.8 * x, x)

    # Same noise stream: the root is LR(eps); each item is LR(w * LR(L) + e) with e = x_lin - w * L_lin.
    np.testing.assert_allclose(lr["L1"], leaky(lin["L1"]), rtol=1e-12)
    for x in ("x1", "x2"):
        e = lin[x] - w[("L1", x)] * lin["L1"]
        np.testing.assert_allclose(lr[x], leaky(w[("L1", x)] * lr["L1"] + e), rtol=1e-12, atol=1e-12)
    negative = lin["L1"] < 0
    assert 0.3 < negative.mean() < 0.7
    np.testing.assert_allclose(lr["L1"][negative] / lin["L1"][negative], 0.8)
    np.testing.assert_allclose(lr["L1"][~negative], lin["L1"][~negative])


def test_simulation_needs_weights_for_every_edge():
    s = simple_structure({"L1": ["x1", "x2"]})
    with pytest.raises(StructureError, match=r"Edge L1 -> x2 has no weight"):
        simulate_data(s, {("L1", "x1"): 1.0}, 10, noise_var={"L1": 1, "x1": 1, "x2": 1})
    with pytest.raises(StructureError, match="no 'weights' metadata"):
        simulate_data(s, n=10)


# ------------------------------------------------------------------ CLI
def test_cli_writes_data_and_truth_and_refuses_to_overwrite(tmp_path):
    runner = CliRunner()
    out, truth = tmp_path / "d.csv", tmp_path / "t.json"
    result = runner.invoke(main, ["simulate", "--seed", "5", "--n", "40", "-o", str(out), "--truth", str(truth)])
    assert result.exit_code == 0, result.output
    data, expected = make_gnfm_dataset(5, 40)
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(expected.observed) and len(frame) == 40
    np.testing.assert_allclose(frame.to_numpy(), data.to_numpy(), rtol=1e-12)
    assert Structure.from_json(truth) == expected
    assert f"Wrote 40 rows x {len(expected.observed)} observed variables" in result.output

    before = out.read_text()
    again = runner.invoke(main, ["simulate", "--seed", "6", "-o", str(out), "--truth", str(tmp_path / "new.json")])
    assert again.exit_code == 2
    assert "already exists; pass --force" in again.output
    assert out.read_text() == before and not (tmp_path / "new.json").exists()

    forced = runner.invoke(main, ["simulate", "--seed", "6", "--n", "30", "-o", str(out), "--force",
                                  "--noise", "laplace", "--nonlinearity", "leaky_relu"])
    assert forced.exit_code == 0, forced.output
    assert len(pd.read_csv(out)) == 30


def test_cli_help_lists_options():
    result = CliRunner().invoke(main, ["simulate", "--help"])
    assert result.exit_code == 0
    for option in ("--seed", "--n", "--truth", "--noise", "--nonlinearity", "--force"):
        assert option in result.output


# -------------------------------------------------------------- example
def test_bundled_example_matches_its_truth():
    csv, truth_path = bundled_example()
    truth = check_gnfm(Structure.from_json(truth_path))
    frame = pd.read_csv(csv)
    assert list(frame.columns) == list(truth.observed)
    assert len(frame) == 1000 and 14 <= frame.shape[1] <= 16 and 3 <= len(truth.latent) <= 4
    assert csv.stat().st_size < 200_000
    latent = set(truth.latent)
    assert any(e.source in latent and e.target in latent for e in truth.edges)
    groups = {frozenset(g) for g in truth.groups}
    assert any(frozenset(truth.parents(x)) not in groups for x in truth.observed)
    # The CSV is the seeded simulation rounded to 4 decimals.
    seed = json.loads(truth_path.read_text())["example"]["seed"]
    data, _ = make_gnfm_dataset(seed, 1000, **{k: tuple(v) if isinstance(v, list) else v
                                               for k, v in truth.metadata["generator"].items()
                                               if k not in ("name", "seed")})
    np.testing.assert_allclose(frame.to_numpy(), data.to_numpy(), atol=5.1e-5)
