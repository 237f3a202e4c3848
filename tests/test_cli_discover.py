"""Tests of ``latentsem discover`` (latentsem/cli/discover.py) through click's CliRunner."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import latentsem.lges
from latentsem.cli import main
from latentsem.cli.discover import show_progress
from latentsem.metrics.latent import compare_structures
from latentsem.model import Structure, simple_structure
from latentsem.simulate.gnfm import bundled_example
from latentsem.syntax import parse_lavaan, table_to_structure

# Measured on the bundled example with the defaults (criterion auto, which keeps lr's model there; seed 0): F1 0.808, SHD 10.
EXAMPLE_MIN_F1 = 0.70


@pytest.fixture(scope="module")
def two_factor_csv(tmp_path_factory):
    """Six items, q1-q3 measure L1 and q4-q6 measure L2, L1 -> L2 (N = 500, seeded)."""
    rng = np.random.default_rng(7)
    n = 500
    l1 = rng.standard_normal(n)
    l2 = 0.8 * l1 + 0.6 * rng.standard_normal(n)
    columns = {f"q{i + 1}": rng.uniform(1, 2) * latent + 0.5 * rng.standard_normal(n)
               for i, latent in enumerate([l1] * 3 + [l2] * 3)}
    path = tmp_path_factory.mktemp("items") / "items.csv"
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    """One `discover --example` run (about 30 s) shared by the example tests."""
    out = tmp_path_factory.mktemp("example")
    result = CliRunner().invoke(main, ["discover", "--example", "-o", str(out / "model.json"),
                                       "--lavaan", str(out / "model.lav")])
    return result, out


def invoke(args):
    return CliRunner().invoke(main, ["discover", *map(str, args)])


# ------------------------------------------------------------------ example
@pytest.mark.slow
def test_example_recovers_the_true_structure(example_run):
    result, out = example_run
    assert result.exit_code == 0, result.output
    truth = Structure.from_json(bundled_example()[1])
    comparison = compare_structures(truth, Structure.from_json(out / "model.json"))
    assert comparison.f1 >= EXAMPLE_MIN_F1
    # The printed comparison is that of the written model.
    assert f"skeleton F1 {comparison.f1:.3f}" in result.output
    assert f"SHD between CPDAGs {comparison.shd}" in result.output
    assert f"precision {comparison.precision:.3f}, recall {comparison.recall:.3f}" in result.output


@pytest.mark.slow
def test_example_json_round_trips_with_the_search_metadata(example_run):
    result, out = example_run
    text = (out / "model.json").read_text()
    model = Structure.from_json(out / "model.json")
    assert model.to_json() == text  # exact round trip, metadata included
    meta = model.metadata
    assert meta["n_samples"] == 1000 and meta["criterion"] == "lr"  # auto: lr's model has the lower BIC
    assert meta["parameters"]["criterion"] == "auto" and set(meta["criterion_bic"]) == {
        "lr", "lr (alpha = 0.01)", "lr (alpha = 0.05)", "rmsea"}
    assert meta["criterion_bic"]["lr"] == min(meta["criterion_bic"].values())
    assert meta["alpha"] == pytest.approx(1 / 1000)
    assert meta["delta"] == pytest.approx(0.25 * np.log(1000) / 1000)
    assert meta["source"].endswith("example.csv") and model.observed == tuple(f"X{i}" for i in range(1, 16))
    assert meta["parameters"]["random_state"] == 0 and "progress" not in meta["parameters"]
    assert meta["parameters"]["pair_restarts"] is True and isinstance(meta["excluded_pairs"], list)
    assert meta["history"] and {"phase", "line", "description", "score_change", "tolerance"} <= set(meta["history"][0])
    assert all(step["phase"] in (1, 2, 3) for step in meta["history"])
    assert meta["parameters"]["regroup"] is True
    # The example's search model is improved by regroup's Phase-2 rerun; the summary says by how much.
    last = meta["history"][-1]
    assert last["phase"] == 3 and last["description"].startswith("Phase 2 rerun")
    bic_text = last["description"].split(": ")[-1]
    assert f"regrouped (0 moves, then Phase 2 again): {bic_text})" in result.output
    assert f"log-likelihood {meta['log_likelihood']:.3f}; {meta['n_candidates']} candidate structures" in result.output
    for name in model.latent:  # every latent is listed with its items
        items = [c for c in model.children(name) if c in model.observed]
        assert f"  {name}: {', '.join(items)}" in result.output


@pytest.mark.slow
def test_example_lavaan_file_describes_the_same_model(example_run):
    _, out = example_run
    model = Structure.from_json(out / "model.json")
    syntax = (out / "model.lav").read_text()
    assert "# latent covariances: dag" in syntax
    parsed = table_to_structure(parse_lavaan(syntax))
    loadings = {(e.source, e.target) for e in model.edges if e.target in model.observed}
    assert {(e.source, e.target) for e in parsed.edges if e.target in parsed.observed} == loadings


# ----------------------------------------------------------- small data set
def test_discover_writes_the_two_factor_model(two_factor_csv, tmp_path):
    out = tmp_path / "model.json"
    result = invoke([two_factor_csv, "-o", out])
    assert result.exit_code == 0, result.output
    model = Structure.from_json(out)
    truth = simple_structure({"F1": ["q1", "q2", "q3"], "F2": ["q4", "q5", "q6"]}, [("F1", "F2", "directed")])
    comparison = compare_structures(truth, model)
    assert comparison.f1 == 1.0 and comparison.shd == 0  # L1 - L2 is the true CPDAG
    assert (f"N = 500, 6 items (lr test at alpha = {1 / 500:.3g}; chosen by BIC over lr (alpha = 0.01), "
            "lr (alpha = 0.05), rmsea)") in result.output
    assert "  L1: q1, q2, q3\n  L2: q4, q5, q6\n  latent edges: L1 - L2\n" in result.output
    assert f"Wrote {out}" in result.output
    assert model.metadata["source"] == str(two_factor_csv)


def test_existing_output_is_kept_without_force(two_factor_csv, tmp_path):
    out = tmp_path / "model.json"
    out.write_text("precious")
    result = invoke([two_factor_csv, "-o", out])
    assert result.exit_code == 2
    assert result.output == f"Error: {out} already exists; pass --force to overwrite it or choose another path.\n"
    assert out.read_text() == "precious"

    lav = tmp_path / "model.lav"
    lav.write_text("kept")
    result = invoke([two_factor_csv, "-o", tmp_path / "new.json", "--lavaan", lav])
    assert result.exit_code == 2 and "already exists" in result.output
    assert lav.read_text() == "kept" and not (tmp_path / "new.json").exists()

    result = invoke([two_factor_csv, "-o", out, "--lavaan", lav, "--force"])
    assert result.exit_code == 0, result.output
    assert Structure.from_json(out).latent == ("L1", "L2")
    assert "L1 =~" in lav.read_text()


def test_quiet_prints_nothing_but_writes(two_factor_csv, tmp_path):
    out = tmp_path / "model.json"
    result = invoke([two_factor_csv, "-o", out, "--quiet"])
    assert result.exit_code == 0
    assert result.output == ""
    assert json.loads(out.read_text())["latent"] == ["L1", "L2"]


def test_search_settings_reach_lges(two_factor_csv, tmp_path, monkeypatch):
    seen = {}

    class Recording(latentsem.lges.LGES):
        def __init__(self, *args, **kwargs):
            seen.update(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(latentsem.lges, "LGES", Recording)
    out = tmp_path / "model.json"
    result = invoke([two_factor_csv, "-o", out, "--delta", "0.01", "--seed", "3", "--n-jobs", "1", "--no-pair-restarts",
                             "--no-regroup"])
    assert result.exit_code == 0, result.output
    assert seen == {"delta_scale": 0.25, "delta": 0.01, "criterion": "delta", "alpha": None, "epsilon": 0.05, "n_jobs": 1,
                    "pair_restarts": False, "regroup": False, "random_state": 3,
                    "progress": False}  # CliRunner's stderr is no terminal
    meta = Structure.from_json(out).metadata
    assert meta["criterion"] == "delta" and meta["delta"] == 0.01
    assert "(delta = 0.01)" in result.output


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_not_quiet():
    assert show_progress(False, _Terminal()) is True
    assert show_progress(True, _Terminal()) is False
    assert show_progress(False, io.StringIO()) is False


# ---------------------------------------------------------------- bad input
def test_missing_items_file(tmp_path):
    out = tmp_path / "model.json"
    result = invoke([tmp_path / "nope.csv", "-o", out])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "nope.csv" in result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_unknown_column_keeps_existing_output_even_with_force(two_factor_csv, tmp_path):
    out = tmp_path / "model.json"
    out.write_text("precious")
    result = invoke([two_factor_csv, "-o", out, "--columns", "q1,q2,q3,q9", "--force"])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "'q9'" in result.output and result.output.count("\n") == 1
    assert out.read_text() == "precious"


def test_too_few_items(two_factor_csv, tmp_path):
    result = invoke([two_factor_csv, "-o", tmp_path / "m.json", "--columns", "q1,q2,q4"])
    assert result.exit_code == 2
    assert result.output == (f"Error: Only 3 item column(s) ['q1', 'q2', 'q4'] were chosen from {two_factor_csv}; "
                             "a latent model needs at least 4 items, so choose more columns.\n")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("args, message", [
    ([], "Error: Give -o/--output FILE for the model JSON (or run --example to try the bundled data).\n"),
    (["--example", "--dataset", "holzinger1939"],
     "Error: --example runs on the bundled example data; drop ITEMS, --dataset, --columns and --missing-code, "
     "or drop --example.\n"),
    (["-o", "same.txt", "--lavaan", "same.txt"], "Error: -o and --lavaan both name same.txt; give two different files.\n"),
    (["-o", "m.json", "--delta", "0.01", "--criterion", "lr"],
     "Error: --delta sets the paper's delta rule but --criterion is lr; drop one of them.\n"),
    (["-o", "m.json", "--delta", "0.01", "--criterion", "auto"],
     "Error: --delta sets the paper's delta rule but --criterion is auto; drop one of them.\n"),
    (["-o", "m.json", "--criterion", "delta", "--alpha", "0.01"],
     "Error: --alpha is the level of the lr test, which --criterion delta does not use; drop --alpha or use "
     "--criterion lr (or auto).\n"),
    (["-o", "m.json", "--criterion", "rmsea", "--alpha", "0.01"],
     "Error: --alpha is the level of the lr test, which --criterion rmsea does not use; drop --alpha or use "
     "--criterion lr (or auto).\n"),
    (["-o", "m.json", "--delta-scale", "-1"],
     "Error: The 'delta_scale' parameter of LGES must be a float in (0, inf). Got -1.0 instead.\n"),
])
def test_bad_options_are_one_line_errors(two_factor_csv, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(([] if "--example" in args else [two_factor_csv]) + args)
    assert result.exit_code == 2
    assert result.output == message
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "same.txt").exists()


def test_items_file_is_never_an_output(two_factor_csv):
    before = two_factor_csv.read_text()
    result = invoke([two_factor_csv, "-o", two_factor_csv, "--force"])
    assert result.exit_code == 2
    assert result.output == f"Error: {two_factor_csv} is the ITEMS file; choose another output path.\n"
    assert two_factor_csv.read_text() == before


def test_help():
    result = CliRunner().invoke(main, ["discover", "--help"])
    assert result.exit_code == 0
    for option in ("--delta-scale", "--criterion [auto|lr|rmsea|delta]", "--epsilon", "--alpha", "--n-jobs", "--seed", "--lavaan",
                   "--example", "--quiet", "--force", "--dataset", "--columns", "--missing-code"):
        assert option in result.output


def test_independent_items_are_reported_without_latent(tmp_path):
    # Items with no common factor: no latent, said in words, and a valid JSON.
    items = tmp_path / "independent.csv"
    pd.DataFrame(np.random.default_rng(1).standard_normal((500, 6)), columns=list("abcdef")).to_csv(items, index=False)
    result = invoke([items, "-o", tmp_path / "model.json"])
    assert result.exit_code == 0, result.output
    assert "no latent found: the items look mutually independent" in result.output
    assert Structure.from_json(tmp_path / "model.json").latent == ()
