"""`latentsem fit`, `latentsem compare` and `latentsem export` through click's CliRunner."""

import json

import pytest
from click.testing import CliRunner

from latentsem.cli import main
from latentsem.model import simple_structure

HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n"
ONE = "g =~ x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9\n"


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def hs_files(tmp_path):
    from latentsem.datasets import dataset_info, find_dataset_file, load_dataset

    if find_dataset_file(dataset_info("holzinger1939")) is None:
        pytest.skip("data set 'holzinger1939' is not available here")
    load_dataset("holzinger1939").frame.to_csv(tmp_path / "hs.csv", index=False, float_format="%.17g")
    (tmp_path / "hs.lav").write_text(HS)
    (tmp_path / "one.lav").write_text(ONE)
    simple_structure({"visual": ["x1", "x2", "x3"], "textual": ["x4", "x5", "x6"], "speed": ["x7", "x8", "x9"]},
                     [("visual", "textual", "undirected")]).to_json(tmp_path / "hs.json")
    return tmp_path


def invoke(runner, *args):
    return runner.invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("name", ["fit", "compare", "export"])
def test_help(runner, name):
    result = invoke(runner, name, "--help")
    assert result.exit_code == 0
    assert "Usage: main " + name in result.output or f"Usage: latentsem {name}" in result.output


def test_fit_prints_lavaan_indices(runner, hs_files):
    result = invoke(runner, "fit", hs_files / "hs.csv", hs_files / "hs.lav")
    assert result.exit_code == 0, result.output
    assert "Test statistic (chi-square)                   85.306" in result.output
    assert "Comparative Fit Index (CFI)                    0.931" in result.output
    assert "latent covariances: free" in result.output


def test_fit_with_dataset_takes_only_the_model(runner, hs_files):
    result = invoke(runner, "fit", "--dataset", "holzinger1939", hs_files / "hs.lav", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["indices"]["chisq"] == pytest.approx(85.3055, abs=1e-4)
    assert payload["indices"]["n"] == 301


def test_fit_structure_json_defaults_to_dag(runner, hs_files):
    result = invoke(runner, "fit", hs_files / "hs.csv", hs_files / "hs.json", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["latent_covariances"] == "dag"
    assert payload["syntax"].endswith("visual ~ textual\nvisual ~~ 0*speed\ntextual ~~ 0*speed\n")
    assert "visual - textual written as textual -> visual" in payload["syntax"]
    free = json.loads(invoke(runner, "fit", hs_files / "hs.csv", hs_files / "hs.json", "--json",
                             "--latent-covariances", "free").stdout)
    assert free["indices"]["chisq"] < payload["indices"]["chisq"]


def test_fit_missing_column_is_one_line_error(runner, hs_files):
    (hs_files / "bad.lav").write_text("f =~ x1 + zz + x3\n")
    result = invoke(runner, "fit", hs_files / "hs.csv", hs_files / "bad.lav")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: The model names ['zz'], which is not a column of the data")


def test_fit_structure_with_an_item_without_parent_is_one_line_error(runner, hs_files):
    # LGES leaves an item that correlates with no other item without a latent parent.
    simple_structure({"visual": ["x1", "x2", "x3"]}, observed=["x1", "x2", "x3", "x4"]).to_json(hs_files / "orphan.json")
    result = invoke(runner, "fit", hs_files / "hs.csv", hs_files / "orphan.json")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: The items ['x4'] have no loading, path or covariance")


def test_fit_syntax_error_names_file_and_position(runner, hs_files):
    (hs_files / "bad.lav").write_text("f =~ x1 + x2 + x3\nf == 2\n")
    result = invoke(runner, "fit", hs_files / "hs.csv", hs_files / "bad.lav")
    assert result.exit_code == 2
    assert result.output.strip().endswith("is not supported by latentsem: equality constraints (==); give the parameters "
                                          "one shared label instead; only =~, ~ and ~~ can be fitted at line 2, pos 3")
    assert "bad.lav: Operator '=='" in result.output


def test_fit_without_model_is_an_error(runner, hs_files):
    result = invoke(runner, "fit", hs_files / "hs.csv")
    assert result.exit_code == 2
    assert "Give the MODEL file" in result.output


def test_fit_reports_heywood_cases(runner, hs_files):
    from latentsem.datasets import dataset_info, find_dataset_file

    if find_dataset_file(dataset_info("multitasking")) is None:
        pytest.skip("data set 'multitasking' is not available here")
    (hs_files / "mb.lav").write_text(
        "Speed =~ Speed_Number + Speed_Letter + Speed_Figure\nError =~ Error_Number + Error_Letter + Error_Figure\n"
        "Question =~ AverageQus_Par1 + AverageQus_Par2 + AverageQus_Par3\nMB =~ Speed + Error + Question\n")
    result = invoke(runner, "fit", "--dataset", "multitasking", hs_files / "mb.lav")
    assert result.exit_code == 0
    assert "Heywood cases:\n  - variance of Question is at the zero bound" in result.output


def test_compare_marks_best_row(runner, hs_files):
    result = invoke(runner, "compare", hs_files / "hs.csv", "--model", f"three={hs_files / 'hs.lav'}",
                    "--model", f"one={hs_files / 'one.lav'}")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["model", "npar", "chisq", "df", "RMSEA", "[90%", "CI]", "CFI", "TLI", "SRMR", "AIC", "BIC"]
    three = next(line for line in lines if line.startswith("three"))
    one = next(line for line in lines if line.startswith("one"))
    assert three.count("*") == 6 and "*" not in one
    assert "85.306" in three and "0.092 [0.071, 0.114]*" in three


def test_compare_json(runner, hs_files):
    result = invoke(runner, "compare", hs_files / "hs.csv", "--model", f"three={hs_files / 'hs.lav'}",
                    "--model", f"one={hs_files / 'one.lav'}", "--json")
    payload = json.loads(result.stdout)
    assert payload["best"]["cfi"] == "three"
    assert payload["models"]["one"]["df"] == 27


@pytest.mark.parametrize("args, message", [
    ((), "Nothing to compare"),
    (("--model", "noequals"), "--model 'noequals' must be NAME=FILE"),
    (("--model", "a=x.lav", "--model", "a=y.lav"), "Model name 'a' is given twice"),
])
def test_compare_bad_options(runner, hs_files, args, message):
    result = invoke(runner, "compare", hs_files / "hs.csv", *args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_export_formats(runner, hs_files):
    lav = invoke(runner, "export", hs_files / "hs.json")
    assert lav.exit_code == 0
    assert "visual =~ 1*x1 + x2 + x3\n" in lav.output and "# Undirected latent edges oriented arbitrarily" in lav.output
    semopy = invoke(runner, "export", hs_files / "hs.json", "--format", "semopy")
    assert "NA*" not in semopy.output and "~~ 0*" in semopy.output
    dot = invoke(runner, "export", hs_files / "hs.json", "--format", "dot")
    assert dot.output.startswith('digraph "latentsem" {') and '"visual" [shape=ellipse];' in dot.output
    js = invoke(runner, "export", hs_files / "hs.lav", "--format", "json")
    assert json.loads(js.stdout)["latent"] == ["visual", "textual", "speed"]


def test_export_writes_file_and_refuses_to_overwrite(runner, hs_files):
    target = hs_files / "out.lav"
    first = invoke(runner, "export", hs_files / "hs.json", "-o", target)
    assert first.exit_code == 0 and target.read_text().startswith("# Undirected")
    target.write_text("precious")
    second = invoke(runner, "export", hs_files / "hs.json", "-o", target)
    assert second.exit_code == 2 and "already exists; pass --force" in second.output
    assert target.read_text() == "precious"
    third = invoke(runner, "export", hs_files / "hs.json", "-o", target, "--force")
    assert third.exit_code == 0 and target.read_text().startswith("# Undirected")


def test_export_table_that_is_no_structure_to_dot_is_an_error(runner, hs_files):
    (hs_files / "path.lav").write_text("x1 ~ x2 + x3\n")
    result = invoke(runner, "export", hs_files / "path.lav", "--format", "dot")
    assert result.exit_code == 2
    assert "regression involving an observed variable" in result.output


def test_fit_json_stays_parseable_when_there_are_warnings(runner, hs_files):
    from latentsem.datasets import dataset_info, find_dataset_file

    if find_dataset_file(dataset_info("multitasking")) is None:
        pytest.skip("data set 'multitasking' is not available here")
    (hs_files / "mb.lav").write_text(
        "Speed =~ Speed_Number + Speed_Letter + Speed_Figure\nError =~ Error_Number + Error_Letter + Error_Figure\n"
        "Question =~ AverageQus_Par1 + AverageQus_Par2 + AverageQus_Par3\nMB =~ Speed + Error + Question\n")
    result = invoke(runner, "fit", "--dataset", "multitasking", hs_files / "mb.lav", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["heywood"][0].startswith("variance of Question is at the zero bound")
    assert result.stderr.startswith("Warning: variance of Question is at the zero bound")


@pytest.mark.slow
def test_compare_discover_adds_the_lges_row(runner, hs_files):
    result = invoke(runner, "compare", hs_files / "hs.csv", "--model", f"three={hs_files / 'hs.lav'}", "--discover")
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines()[1:3]]
    assert rows == ["three", "LGES"]
