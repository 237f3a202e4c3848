"""Tests of `latentsem datasets ...` and of the shared CLI helpers in latentsem/cli/_common.py."""

import hashlib
from dataclasses import replace
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import latentsem.datasets as ds
from latentsem.cli import main
from latentsem.cli._common import items_options, load_items_from_cli, parse_columns, refuse_overwrite
from latentsem.datasets import DATASETS
from latentsem.exceptions import DataError, LatentsemError


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Nothing is found: empty LATENTSEM_DATA and cache, no ../shared beside the cwd or the repository."""
    for folder in ("env", "cache", "work"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("LATENTSEM_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ds.sys, "platform", "linux")
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setattr(ds, "REPO_ROOT", tmp_path / "nowhere" / "repo")
    return tmp_path


def shared_file(name):
    path = ds.find_dataset_file(DATASETS[name])
    if path is None:
        pytest.skip(f"data set {name} not found")
    return path


@pytest.fixture
def items_csv(tmp_path):
    rng = np.random.default_rng(11)
    latent = rng.normal(size=(40, 1))
    df = pd.DataFrame(np.round(3 + latent + rng.normal(size=(40, 5)), 2), columns=["a", "b", "c", "d", "e"])
    df.loc[[0, 5], "c"] = -9
    path = tmp_path / "items.csv"
    df.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------ commands
def test_help_lists_datasets_and_its_subcommands(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "datasets" in result.output
    result = runner.invoke(main, ["datasets", "--help"])
    assert result.exit_code == 0
    for sub in ("list", "info", "path", "fetch"):
        assert sub in result.output
    for sub in ("list", "info", "path", "fetch"):
        assert runner.invoke(main, ["datasets", sub, "--help"]).exit_code == 0


def test_list_shows_every_data_set_with_shape_items_and_status(runner):
    result = runner.invoke(main, ["datasets", "list"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["NAME", "FILE", "ROWS", "x", "COLS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == list(DATASETS)
    assert rows["bigfive"].split()[1:6] == ["19719", "x", "57", "25", "19718"]
    assert rows["burnout"].split()[1:6] == ["599", "x", "32", "32", "599"]
    for name, line in rows.items():
        found = ds.find_dataset_file(DATASETS[name])
        assert (f"found: {found}" in line) if found else line.rstrip().endswith("not found")


def test_list_when_nothing_is_found(runner, isolated):
    result = runner.invoke(main, ["datasets", "list"])
    assert result.exit_code == 0
    assert sum(line.rstrip().endswith("not found") for line in result.output.splitlines()) == len(DATASETS)


def test_info_prints_card_facts_and_models(runner):
    result = runner.invoke(main, ["datasets", "info", "burnout"])
    assert result.exit_code == 0
    out = result.output
    assert "sha256:" in out and "fffd8332bcb5aefd816528abab674569b9ff2bb22252d18160c3867c2e186d51" in out
    assert "599 (listwise deletion on the items)" in out
    assert "32: RA1, RA2, RC1" in out
    for model in ("byrne1994", "byrne2010", "byrne2010_respecified"):
        assert f"model {model}:" in out and f"burnout/{model}.lav" in out
    assert "(missing)" not in out
    info = runner.invoke(main, ["datasets", "info", "bigfive"]).output
    assert "0, plus empty fields" in info and "delimiter '\\t'" in info and "goldberg1993" in info


def test_info_unknown_name_is_one_line_error(runner):
    result = runner.invoke(main, ["datasets", "info", "big5"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: Unknown data set 'big5'; known data sets: bigfive, bigfive50, burnout, multitasking, bfi, "
        "holzinger1939, political_democracy."]


def test_path_prints_resolved_path(runner):
    expected = shared_file("political_democracy")
    result = runner.invoke(main, ["datasets", "path", "political_democracy"])
    assert result.exit_code == 0 and result.output.strip() == str(expected)


def test_path_not_found_exits_nonzero_with_one_line(runner, isolated):
    result = runner.invoke(main, ["datasets", "path", "burnout"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Data set 'burnout' (burnout/Teacher_Burnout_data.csv) was not found")
    assert "latentsem datasets fetch burnout" in lines[0]


def test_fetch_with_file_url(runner, isolated, monkeypatch):
    content = b"a,b,c,d\n1,2,3,4\n2,1,4,3\n3,4,1,2\n4,3,2,1\n5,5,5,1\n"
    monkeypatch.setitem(DATASETS, "toy", replace(DATASETS["burnout"], name="toy", folder="toy", filename="toy.csv",
                                                 sha256=hashlib.sha256(content).hexdigest(), model_files=()))
    source = isolated / "toy.csv"
    source.write_bytes(content)
    result = runner.invoke(main, ["datasets", "fetch", "toy", "--url", source.as_uri()])
    assert result.exit_code == 0, result.output
    target = isolated / "cache" / "latentsem" / "toy" / "toy.csv"
    assert result.output.strip() == str(target) and target.read_bytes() == content
    listed = runner.invoke(main, ["datasets", "list"]).output
    assert f"found: {target}" in listed


def test_fetch_offline_is_one_line_error(runner, isolated, monkeypatch):
    import urllib.error

    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(ds, "_urlopen", offline)
    result = runner.invoke(main, ["datasets", "fetch", "multitasking"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: Could not download 'multitasking' from https://raw.githubusercontent.com/")
    assert "if this machine is offline, copy Final_Multitasking_Data.csv from another machine to " in lines[0]
    assert str(isolated / "cache" / "latentsem" / "multitasking" / "Final_Multitasking_Data.csv") in lines[0]


# ------------------------------------------------------------- _common helpers
@click.command()
@items_options
def show(items, dataset, columns, missing_code):
    data = load_items_from_cli(items, dataset, columns, missing_code)
    click.echo(f"{data.n} {data.n_dropped} {','.join(data.columns)}")


def test_items_options_adds_argument_and_options(runner):
    result = runner.invoke(show, ["--help"])
    assert result.exit_code == 0
    for text in ("[ITEMS]", "--dataset NAME", "--columns A,B,C", "--missing-code VALUE"):
        assert text in result.output


def test_items_file_with_columns_and_missing_code(runner, items_csv):
    result = runner.invoke(show, [str(items_csv), "--columns", "e, d,c,b", "--missing-code", "-9"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "38 2 e,d,c,b"
    assert runner.invoke(show, [str(items_csv)]).output.strip() == "40 0 a,b,c,d,e"


def test_dataset_option_with_column_override(runner):
    shared_file("burnout")
    result = runner.invoke(show, ["--dataset", "burnout", "--columns", "EE1,EE2,EE3,DP1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "599 0 EE1,EE2,EE3,DP1"


def test_missing_code_overrides_the_card(runner):
    shared_file("bigfive")
    result = runner.invoke(show, ["--dataset", "bigfive", "--columns", "E1,E2,E3,E4", "--missing-code", "-1"])
    assert result.output.strip() == "19719 0 E1,E2,E3,E4"


def test_exactly_one_source_is_required(items_csv):
    with pytest.raises(LatentsemError, match=r"^Give an ITEMS file or --dataset NAME \(see `latentsem datasets list`\)\.$"):
        load_items_from_cli(None, None, None, None)
    with pytest.raises(LatentsemError, match=r"^Give either an ITEMS file \(.*items\.csv\) or --dataset burnout, not both\.$"):
        load_items_from_cli(items_csv, "burnout", None, None)


def test_data_errors_pass_through(tmp_path):
    with pytest.raises(DataError, match=r"does not exist"):
        load_items_from_cli(tmp_path / "absent.csv", None, None, None)
    with pytest.raises(DataError, match=r"Unknown data set 'nope'"):
        load_items_from_cli(None, "nope", None, None)


def test_parse_columns():
    assert parse_columns(" a, b ,c,") == ["a", "b", "c"]
    assert parse_columns(None) is None
    with pytest.raises(LatentsemError, match=r"--columns ' , ' names no columns"):
        parse_columns(" , ")


def test_refuse_overwrite(tmp_path):
    existing = tmp_path / "model.lav"
    existing.write_text("F =~ a + b + c\n")
    with pytest.raises(LatentsemError, match=rf"^{existing} already exists; pass --force to overwrite it or choose another path\.$"):
        refuse_overwrite(existing, force=False)
    refuse_overwrite(existing, force=True)
    refuse_overwrite(tmp_path / "new.lav", force=False)
    assert existing.read_text() == "F =~ a + b + c\n"


def test_cli_error_for_both_sources_is_one_line(runner, items_csv, monkeypatch):
    """Through the latentsem group a LatentsemError becomes 'Error: ...' with exit status 2."""
    import latentsem.cli as cli

    monkeypatch.setitem(cli.COMMANDS, "show-items", ("_test_show", "test"))
    monkeypatch.setattr(cli.LazyGroup, "get_command",
                        lambda self, ctx, name: show if name == "show-items" else None)
    result = runner.invoke(main, ["show-items", str(items_csv), "--dataset", "burnout"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: Give either an ITEMS file")
