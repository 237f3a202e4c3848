"""Tests of latentsem.datasets: the registry, the file search, checksums, fetch and the literature models."""

import hashlib
import re
import shutil
import subprocess
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

import latentsem.datasets as ds
from latentsem.data import read_items
from latentsem.datasets import (DATASETS, dataset_info, dataset_path, fetch_dataset, list_datasets, load_dataset,
                                search_roots)
from latentsem.exceptions import DataError

# Documented rows analysed x items (the PROVENANCE.md files of the shared data), and rows dropped listwise.
EXPECTED = {
    "bigfive": (19718, 25, 1),
    "bigfive50": (19718, 50, 1),
    "burnout": (599, 32, 0),
    "multitasking": (202, 9, 0),
    "bfi": (2436, 25, 364),
    "holzinger1939": (301, 9, 0),
    "political_democracy": (75, 11, 0),
}


def require(name):
    """Skip when the shared data are not beside the checkout (the registry searches the usual places)."""
    path = ds.find_dataset_file(DATASETS[name])
    if path is None:
        pytest.skip(f"data set {name} not found in {search_roots()}")
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No shared data, an empty cache and an empty LATENTSEM_DATA: only what a test puts there is found."""
    env = tmp_path / "env"
    cache_home = tmp_path / "cache"
    work = tmp_path / "work"
    for folder in (env, cache_home, work):
        folder.mkdir()
    monkeypatch.setenv("LATENTSEM_DATA", str(env))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    monkeypatch.setattr(ds.sys, "platform", "linux")
    monkeypatch.chdir(work)
    monkeypatch.setattr(ds, "REPO_ROOT", tmp_path / "nowhere" / "repo")
    return tmp_path


def put(root, dataset, content):
    path = Path(root) / dataset.folder / dataset.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A registered toy data set (5 items, 12 rows) whose bytes and sha256 the test controls."""
    rng = np.random.default_rng(7)
    df = pd.DataFrame(rng.integers(1, 6, size=(12, 5)), columns=[f"t{j}" for j in range(1, 6)])
    content = df.to_csv(index=False).encode()
    dataset = replace(DATASETS["burnout"], name="toy", folder="toy", filename="toy.csv",
                      sha256=hashlib.sha256(content).hexdigest(), columns=tuple(df.columns), n_rows=12,
                      file_shape=(12, 5), url="https://example.invalid/toy.csv", model_files=())
    monkeypatch.setitem(DATASETS, "toy", dataset)
    source = tmp_path / "source" / "toy.csv"
    source.parent.mkdir()
    source.write_bytes(content)
    return dataset, content, source


# ----------------------------------------------------------------- registry
def test_registry_names_and_unknown_name():
    assert list_datasets() == list(EXPECTED)
    with pytest.raises(DataError, match=r"Unknown data set 'big5'; known data sets: bigfive, bigfive50, burnout, "
                                        r"multitasking, bfi, holzinger1939, political_democracy\.$"):
        dataset_info("big5")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_registry_matches_documented_shape(name):
    info = dataset_info(name)
    n, p, _ = EXPECTED[name]
    assert info.n_rows == n and info.n_items == p and len(set(info.columns)) == p
    assert re.fullmatch(r"[0-9a-f]{64}", info.sha256)


def test_bigfive_items_are_first_five_of_each_trait():
    assert dataset_info("bigfive").columns[:6] == ("E1", "E2", "E3", "E4", "E5", "N1")
    assert dataset_info("bigfive").columns[-1] == "O5"
    assert dataset_info("bigfive").missing_code == 0
    assert dataset_info("bigfive").delimiter == "\t"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_loading_gives_documented_n_and_columns(name):
    require(name)
    n, p, dropped = EXPECTED[name]
    data = load_dataset(name)
    assert (data.n, len(data.columns)) == (n, p)
    assert data.n_dropped == dropped
    assert data.columns == list(dataset_info(name).columns)
    assert name in data.source


def test_multitasking_is_rescaled_without_changing_correlations():
    path = require("multitasking")
    data = load_dataset("multitasking")
    assert_allclose(data.frame.std(ddof=0), 1.0, rtol=1e-12)
    raw = read_items(path, columns=list(dataset_info("multitasking").columns))
    assert raw.frame["Speed_Number"].var(ddof=0) > 1000  # the scale problem rescaling removes
    assert_allclose(data.correlation(), raw.correlation(), rtol=1e-12)


def test_overrides_of_columns_and_missing_code():
    require("bigfive")
    data = load_dataset("bigfive", columns=["O1", "O2", "O3", "O4"])
    assert data.columns == ["O1", "O2", "O3", "O4"] and data.n == 19718
    # without the card's 0 = missing code the all-zero respondent stays in
    assert load_dataset("bigfive", columns=["O1", "O2", "O3", "O4"], missing_code=-99).n == 19719


def test_literature_models_are_registered():
    assert set(dataset_info("bigfive").models) == {"goldberg1993"}
    assert set(dataset_info("burnout").models) == {"byrne1994", "byrne2010", "byrne2010_respecified"}
    assert set(dataset_info("multitasking").models) == {"himi2019", "himi2019_second_order"}
    assert set(dataset_info("holzinger1939").models) == {"three_factor"}
    assert set(dataset_info("political_democracy").models) == {"bollen"}
    assert set(dataset_info("bfi").models) == {"five_factor"}


def _variables(syntax):
    """(latent, all variable names) of simple lavaan syntax: `=~`, `~`, `~~` lines with `+` terms."""
    latent, names = set(), set()
    for line in syntax.splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        op = next(o for o in ("=~", "~~", "~") if o in line)
        lhs, rhs = line.split(op)
        terms = [t.strip().split("*")[-1] for t in rhs.split("+")]
        if op == "=~":
            latent.add(lhs.strip())
        names.update([lhs.strip(), *terms])
    return latent, names


@pytest.mark.parametrize("name", [n for n in EXPECTED if DATASETS[n].model_files])
def test_model_files_use_exactly_the_card_items(name):
    info = dataset_info(name)
    for model, path in info.models.items():
        text = path.read_text()
        header = [line for line in text.splitlines() if line.startswith("#")]
        assert text.startswith("# ") and len(header) >= 3, model
        assert "Source:" in text and "Table 3" in text, model
        latent, names = _variables(text)
        assert names - latent == set(info.columns), model


def test_cards_state_the_registry_facts():
    for name, info in DATASETS.items():
        card = info.card_path.read_text()
        assert info.sha256 in card, name
        assert f"{info.n_rows:,}" in card or str(info.n_rows) in card, name
        assert info.relative_path in card, name
        for model in info.models.values():
            assert model.relative_to(ds.CARDS_DIR).as_posix() in card, (name, model)
    assert "scale-invariant" in dataset_info("multitasking").card_path.read_text()


# ------------------------------------------------------------- search order
def test_search_roots_order(isolated):
    roots = search_roots()
    assert roots == [isolated / "env", isolated / "cache" / "latentsem", isolated / "shared" / "datasets",
                     isolated / "nowhere" / "shared" / "datasets"]


def test_latentsem_data_wins_over_cache_and_shared(isolated, toy):
    dataset, content, _ = toy
    shared = put(isolated / "shared" / "datasets", dataset, content)
    assert dataset_path("toy") == shared
    cached = put(isolated / "cache" / "latentsem", dataset, content)
    assert dataset_path("toy") == cached
    env = put(isolated / "env", dataset, content)
    assert dataset_path("toy") == env
    assert load_dataset("toy").n == 12


def test_repository_relative_shared_folder_is_searched(isolated, toy, monkeypatch):
    dataset, content, _ = toy
    repo = isolated / "clone" / "latentsem-repo"
    monkeypatch.setattr(ds, "REPO_ROOT", repo)
    expected = put(isolated / "clone" / "shared" / "datasets", dataset, content)
    assert dataset_path("toy") == expected


def test_latentsem_data_beats_the_real_shared_copy(tmp_path, monkeypatch):
    real = require("burnout")
    monkeypatch.setenv("LATENTSEM_DATA", str(tmp_path))
    copy = tmp_path / "burnout" / "Teacher_Burnout_data.csv"
    copy.parent.mkdir()
    shutil.copyfile(real, copy)
    assert dataset_path("burnout") == copy != real


def test_corrupted_copy_is_caught(tmp_path, monkeypatch):
    real = require("burnout")
    monkeypatch.setenv("LATENTSEM_DATA", str(tmp_path))
    copy = tmp_path / "burnout" / "Teacher_Burnout_data.csv"
    copy.parent.mkdir()
    copy.write_bytes(real.read_bytes().replace(b"3.67", b"3.68", 1))
    got = hashlib.sha256(copy.read_bytes()).hexdigest()
    with pytest.raises(DataError, match=rf"does not match data set 'burnout': sha256 expected "
                                        rf"fffd8332bcb5aefd816528abab674569b9ff2bb22252d18160c3867c2e186d51 but got {got}; "
                                        rf".*latentsem datasets fetch burnout"):
        load_dataset("burnout")


def test_not_found_says_what_to_do(isolated, toy):
    with pytest.raises(DataError, match=r"Data set 'toy' \(toy/toy\.csv\) was not found under .*; run `latentsem datasets "
                                        r"fetch toy`, or copy the file to .*cache/latentsem/toy/toy\.csv, or set LATENTSEM_DATA"):
        dataset_path("toy")


@pytest.mark.parametrize("platform, env, expected", [
    ("linux", {"XDG_CACHE_HOME": "/x/cache"}, Path("/x/cache/latentsem")),
    ("darwin", {}, Path.home() / "Library" / "Caches" / "latentsem"),
    ("win32", {"LOCALAPPDATA": "/w/local"}, Path("/w/local/latentsem/Cache")),
])
def test_cache_dir_per_platform(monkeypatch, platform, env, expected):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(ds.sys, "platform", platform)
    assert ds.cache_dir() == expected


def test_cache_dir_default_on_linux(monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(ds.sys, "platform", "linux")
    assert ds.cache_dir() == Path.home() / ".cache" / "latentsem"


# --------------------------------------------------------------------- fetch
def test_fetch_from_file_url_into_cache(isolated, toy):
    dataset, content, source = toy
    path = fetch_dataset("toy", url=source.as_uri())
    assert path == isolated / "cache" / "latentsem" / "toy" / "toy.csv"
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.csv"]  # no temporary files left
    assert dataset_path("toy") == path


def test_fetch_uses_the_registered_url(isolated, toy, monkeypatch):
    dataset, content, source = toy
    seen = []

    def opener(url, timeout):
        seen.append(url)
        return open(source, "rb")

    monkeypatch.setattr(ds, "_urlopen", opener)
    fetch_dataset("toy")
    assert seen == ["https://example.invalid/toy.csv"]
    # a verified cached copy is not downloaded again unless forced
    fetch_dataset("toy")
    assert len(seen) == 1
    fetch_dataset("toy", force=True)
    assert len(seen) == 2


def test_fetch_offline_message(isolated, toy, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(ds, "_urlopen", offline)
    target = isolated / "cache" / "latentsem" / "toy" / "toy.csv"
    with pytest.raises(DataError, match=rf"Could not download 'toy' from https://example\.invalid/toy\.csv \(\[Errno -3\] "
                                        rf"Temporary failure in name resolution\); if this machine is offline, copy toy\.csv "
                                        rf"from another machine to {re.escape(str(target))} or set LATENTSEM_DATA"):
        fetch_dataset("toy")
    assert not target.parent.exists()


def test_fetch_rejects_wrong_checksum_and_keeps_nothing(isolated, toy, tmp_path):
    dataset, content, source = toy
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content + b"1,1,1,1,1\n")
    with pytest.raises(DataError, match=rf"has sha256 {hashlib.sha256(bad.read_bytes()).hexdigest()} but "
                                        rf"{dataset.sha256} was expected; it was discarded"):
        fetch_dataset("toy", url=bad.as_uri())
    assert not (isolated / "cache" / "latentsem" / "toy").exists()


def test_fetch_replaces_a_corrupted_cache_copy(isolated, toy):
    dataset, content, source = toy
    cached = put(isolated / "cache" / "latentsem", dataset, b"garbage\n")
    assert fetch_dataset("toy", url=source.as_uri()) == cached
    assert cached.read_bytes() == content


def test_fetch_without_any_source(isolated, toy, monkeypatch):
    dataset, _, _ = toy
    monkeypatch.setitem(DATASETS, "toy", replace(dataset, url=None, r_export=None))
    with pytest.raises(DataError, match=r"Data set 'toy' has no public address to fetch from; copy toy\.csv to "):
        fetch_dataset("toy")


def _has_lavaan():
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(lavaan)"], capture_output=True).returncode == 0


@pytest.mark.live_lavaan
@pytest.mark.skipif(not _has_lavaan(), reason="Rscript with lavaan is not installed")
def test_fetch_exports_r_data_sets_byte_identically(isolated):
    path = fetch_dataset("holzinger1939")
    assert path == isolated / "cache" / "latentsem" / "holzinger1939" / "HolzingerSwineford1939.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == DATASETS["holzinger1939"].sha256
    assert load_dataset("holzinger1939").n == 301


def test_fetch_r_export_without_rscript(isolated, monkeypatch):
    monkeypatch.setattr(ds.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match=r"exported from the R package lavaan, but Rscript is not installed; install R and "
                                        r"lavaan, or copy PoliticalDemocracy\.csv to "):
        fetch_dataset("political_democracy")


# -------------------------------------------------- literature models in lavaan
# Fits of every registered literature model with lavaan 0.6-14 (ML, listwise) on exactly the rows and columns
# load_dataset returns; the expected values are those of LITERATURE_MODELS.md and REFERENCE.md section 3.
LAVAAN_EXPECTED = {
    ("bigfive", "goldberg1993"): (23197.05, 265),
    ("burnout", "byrne1994"): (971.16, 429),
    ("burnout", "byrne2010"): (1032.62, 436),
    ("burnout", "byrne2010_respecified"): (950.13, 438),
    ("multitasking", "himi2019"): (58.52, 24),  # rescaled data: chi2 is scale-invariant
    # just-identified second level: the optimum equals the correlated model; on the raw scales lavaan stops
    # early at 64.47 (LITERATURE_MODELS.md), on the registered rescaled data it reaches the optimum
    ("multitasking", "himi2019_second_order"): (58.52, 24),
    ("holzinger1939", "three_factor"): (85.3055, 24),
    ("political_democracy", "bollen"): (38.1252, 35),
    ("bfi", "five_factor"): (4165.4674, 265),
}
R_FIT = r"""
suppressMessages(library(lavaan))
a <- commandArgs(trailingOnly=TRUE)
d <- read.csv(a[1]); m <- paste(readLines(a[2]), collapse="\n")
fit <- suppressWarnings(sem(m, data=d))
cat(sprintf("%.6f %d %d\n", fitMeasures(fit, "chisq"), as.integer(fitMeasures(fit, "df")), lavInspect(fit, "nobs")))
"""


@pytest.mark.slow
@pytest.mark.live_lavaan
@pytest.mark.skipif(not _has_lavaan(), reason="Rscript with lavaan is not installed")
@pytest.mark.parametrize("name, model", list(LAVAAN_EXPECTED))
def test_literature_models_reproduce_lavaan_values(tmp_path, name, model):
    require(name)
    data = load_dataset(name)
    csv_path = tmp_path / "items.csv"
    data.frame.to_csv(csv_path, index=False, float_format="%.17g")
    out = subprocess.run(["Rscript", "-e", R_FIT, str(csv_path), str(dataset_info(name).models[model])],
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    chisq, df, n = float(out[0]), int(out[1]), int(out[2])
    expected_chisq, expected_df = LAVAAN_EXPECTED[(name, model)]
    assert (df, n) == (expected_df, EXPECTED[name][0])
    decimals = len(str(expected_chisq).split(".")[1])
    assert chisq == pytest.approx(expected_chisq, abs=0.6 * 10 ** -decimals)
