"""Tests of ``latentsem report``: exit codes, one-line errors, --force, --reported and --discover."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from latentsem.cli import main
from latentsem.model import Structure, simple_structure

REPO = Path(__file__).resolve().parent.parent
THREE_FACTOR = REPO / "datasets" / "holzinger1939" / "three_factor.lav"


@pytest.fixture(scope="module", autouse=True)
def _needs_holzinger():
    from latentsem.datasets import dataset_info, find_dataset_file

    if find_dataset_file(dataset_info("holzinger1939")) is None:
        pytest.skip("holzinger1939 data file not found")


def run(*args):
    return CliRunner().invoke(main, ["report", *map(str, args)])


def assert_one_line_error(result, text):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and text in error_lines[0], result.output


def test_report_help():
    result = run("--help")
    assert result.exit_code == 0
    for option in ("--model", "--discover", "--latent-covariances", "--force", "--reported", "--title"):
        assert option in result.output
    listing = CliRunner().invoke(main, ["--help"])
    assert "report" in listing.output


def test_report_writes_files_and_prints_lavaan_chisq(tmp_path):
    out = tmp_path / "rep"
    result = run("--dataset", "holzinger1939", "--model", f"three_factor={THREE_FACTOR}", "--latent-covariances",
                 "free", "--reported", "Paper=rmsea:0.092,cfi:0.931,tli:0.896", "--title", "HS 1939", "-o", out)
    assert result.exit_code == 0, result.output
    assert "three_factor: chisq(24) = 85.306" in result.output  # lavaan 0.6-14: 85.3055
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "report.html", "report.md", "three_factor.svg"]
    fit = json.loads((out / "fit.json").read_text())
    assert fit["settings"]["latent_covariances"] == "free" and fit["settings"]["bounds"] is True
    assert fit["reported"] == [{"name": "Paper", "note": "", "rmsea": 0.092, "cfi": 0.931, "tli": 0.896}]
    assert "<title>HS 1939</title>" in (out / "report.html").read_text()


def test_report_model_without_name_uses_file_stem_and_no_bounds(tmp_path):
    result = run("--dataset", "holzinger1939", "--model", THREE_FACTOR, "--no-bounds", "-o", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rep" / "three_factor.svg").is_file()
    fit = json.loads((tmp_path / "rep" / "fit.json").read_text())
    assert fit["settings"]["bounds"] is False
    assert "unbounded (lavaan&#39;s default)" in (tmp_path / "rep" / "report.html").read_text()


def test_report_refuses_existing_directory_then_force_replaces_only_its_files(tmp_path):
    out = tmp_path / "rep"
    out.mkdir()
    (out / "report.html").write_text("keep me")
    (out / "mine.txt").write_text("mine")
    refused = run("--dataset", "holzinger1939", "--model", f"m={THREE_FACTOR}", "-o", out)
    assert_one_line_error(refused, "already exists and is not empty; pass --force")
    assert (out / "report.html").read_text() == "keep me"
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", "report.html"]

    forced = run("--dataset", "holzinger1939", "--model", f"m={THREE_FACTOR}", "--force", "-o", out)
    assert forced.exit_code == 0, forced.output
    assert (out / "mine.txt").read_text() == "mine"
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("args, message", [
    ((), "give at least one --model NAME=FILE or --discover"),
    (("--model", "m=missing.lav"), "Model file 'missing.lav'"),
    (("--model", "=x.lav"), "is not NAME=FILE"),
    (("--reported", "Paper=rmsea0.05", "--model", f"m={THREE_FACTOR}"), "is not INDEX:VALUE"),
    (("--reported", "Paper=gfi:0.9", "--model", f"m={THREE_FACTOR}"), "is not INDEX:VALUE"),
    (("--reported", "Paper=cfi:high", "--model", f"m={THREE_FACTOR}"), "'high' is not a number"),
    (("--model", f"a={THREE_FACTOR}", "--model", f"a={THREE_FACTOR}"), "Two --model options are named 'a'"),
    (("--model", f"m={THREE_FACTOR}", "--labels", "nope.json"), "Labels file 'nope.json' does not exist"),
])
def test_report_bad_options_are_one_line_errors(tmp_path, args, message):
    out = tmp_path / "rep"
    result = run("--dataset", "holzinger1939", *args, "-o", out)
    assert_one_line_error(result, message)
    assert not out.exists()


def test_report_bad_model_content_is_a_one_line_error(tmp_path):
    bad_syntax = tmp_path / "bad.lav"
    bad_syntax.write_text("visual =~ x1 + + x2\n")
    result = run("--dataset", "holzinger1939", "--model", f"bad={bad_syntax}", "-o", tmp_path / "a")
    assert_one_line_error(result, "line 1")
    wrong_item = tmp_path / "wrong.lav"
    wrong_item.write_text("f =~ x1 + x2 + q9\n")
    result = run("--dataset", "holzinger1939", "--model", f"w={wrong_item}", "-o", tmp_path / "b")
    assert_one_line_error(result, "['q9']")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_report_output_that_is_a_file_or_binary_model_is_a_one_line_error(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("not a directory")
    result = run("--dataset", "holzinger1939", "--model", f"m={THREE_FACTOR}", "--force", "-o", target)
    assert_one_line_error(result, "exists and is not a directory")
    assert target.read_text() == "not a directory"
    binary = tmp_path / "model.lav"
    binary.write_bytes(b"\xff\xfe\x00bin")
    result = run("--dataset", "holzinger1939", "--model", f"m={binary}", "-o", tmp_path / "rep")
    assert_one_line_error(result, "is not UTF-8 text")


def test_report_needs_data(tmp_path):
    result = run("--model", f"m={THREE_FACTOR}", "-o", tmp_path / "rep")
    assert_one_line_error(result, "Give an ITEMS file or --dataset NAME")


def test_report_labels_from_a_json_file(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({f"x{i}": "visual" if i <= 3 else "other" for i in range(1, 10)}))
    result = run("--dataset", "holzinger1939", "--model", f"m={THREE_FACTOR}", "--labels", labels,
                 "-o", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    assert 'id="purity"' in (tmp_path / "rep" / "report.html").read_text()


class _FakeLGES:
    """Stands in for latentsem.lges.LGES with its contract: LGES(random_state=...).fit(data) -> self with
    model_ (a Structure) and runtime_. It returns a fixed structure so that the test checks the plumbing of
    --discover (the estimator is called with the seed and the loaded data, its model is fitted, drawn and
    written to model.json), not the search itself; test_report_discover_with_real_lges runs the real one."""

    calls = []
    structure = simple_structure({"L1": ["x1", "x2", "x3"], "L2": ["x4", "x5", "x6"], "L3": ["x7", "x8", "x9"]},
                                 [("L1", "L2", "undirected"), ("L2", "L3", "directed")])

    def __init__(self, random_state=None, criterion="lr", **kwargs):
        self.random_state, self.criterion = random_state, criterion

    def fit(self, X):
        self.calls.append((self.random_state, self.criterion, X.n, list(X.columns)))
        self.model_ = self.structure
        self.runtime_ = 1.25
        return self


def test_report_discover_plumbing_with_a_fake_lges(tmp_path, monkeypatch):
    import latentsem.lges

    monkeypatch.setattr(latentsem.lges, "LGES", _FakeLGES)
    _FakeLGES.calls.clear()
    out = tmp_path / "rep"
    result = run("--dataset", "holzinger1939", "--model", f"three_factor={THREE_FACTOR}", "--discover",
                 "--seed", "7", "-o", out)
    assert result.exit_code == 0, result.output
    assert _FakeLGES.calls == [(7, "auto", 301, [f"x{i}" for i in range(1, 10)])]  # discover's default criterion
    assert Structure.from_json(out / "model.json") == _FakeLGES.structure
    assert (out / "LGES_discovered.svg").is_file()
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit["models"]) == {"three_factor", "LGES (discovered)"}
    assert "discovered by LGES in 1.2 s" in (out / "report.html").read_text()


def test_report_discover_with_real_lges(tmp_path):
    from latentsem.datasets import load_dataset
    from latentsem.fit import fit_model

    out = tmp_path / "rep"
    result = run("--dataset", "holzinger1939", "--discover", "-o", out)
    assert result.exit_code == 0, result.output
    structure = Structure.from_json(out / "model.json")
    assert list(structure.observed) == [f"x{i}" for i in range(1, 10)] and structure.latent
    reported = json.loads((out / "fit.json").read_text())["models"]["LGES (discovered)"]["indices"]
    refit = fit_model(structure, load_dataset("holzinger1939"), latent_covariances="dag").indices
    assert reported["chisq"] == pytest.approx(refit["chisq"], rel=1e-6)
    assert reported["df"] == refit["df"]
