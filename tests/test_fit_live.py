"""Live cross-checks with R's lavaan: same data, same syntax, and our exported syntax fitted by lavaan.

Skipped unless ``Rscript`` with the lavaan package is installed
(``apt-get install --no-install-recommends r-base-core r-cran-lavaan``).
"""

import shutil
import subprocess
import warnings

import pytest

from latentsem.fit import fit_model
from latentsem.model import Edge, Structure
from latentsem.syntax import parse_lavaan, table_to_structure, to_lavaan


def _lavaan_installed():
    if shutil.which("Rscript") is None:
        return False
    done = subprocess.run(["Rscript", "-e", "library(lavaan)"], capture_output=True, timeout=120)
    return done.returncode == 0


pytestmark = [pytest.mark.live_lavaan,
              pytest.mark.skipif(not _lavaan_installed(), reason="Rscript with the lavaan package is not installed")]

R_FIT = r"""
suppressPackageStartupMessages(library(lavaan))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
opts <- list(model = paste(readLines(args[2]), collapse = "\n"), data = data)
if (args[3] == "bounded") opts$bounds <- "pos.var"
if (args[4] == "dag") { opts$orthogonal <- TRUE; opts$auto.cov.y <- FALSE }
fit <- suppressWarnings(do.call("sem", opts))
fm <- fitMeasures(fit, c("npar", "chisq", "df", "pvalue", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper",
                         "cfi", "tli", "srmr", "logl", "aic", "bic", "ntotal"))
cat(sprintf("%s %.17g\n", names(fm), fm), sep = "")
"""
NAMES = {"rmsea.ci.lower": "rmsea_ci_lower", "rmsea.ci.upper": "rmsea_ci_upper", "logl": "loglik", "ntotal": "n"}


def lavaan_indices(tmp_path, data, syntax, bounded=False, semantics="free"):
    """fitMeasures() of lavaan's sem() on exactly our rows, keyed by our index names."""
    (tmp_path / "fit.R").write_text(R_FIT)
    (tmp_path / "model.lav").write_text(syntax)
    data.frame.to_csv(tmp_path / "data.csv", index=False, float_format="%.17g")
    done = subprocess.run(["Rscript", str(tmp_path / "fit.R"), str(tmp_path / "data.csv"), str(tmp_path / "model.lav"),
                           "bounded" if bounded else "default", semantics], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = {}
    for line in done.stdout.splitlines():
        name, value = line.split()
        out[NAMES.get(name, name)] = float(value)
    return out


def dataset(name):
    from latentsem.datasets import dataset_info, find_dataset_file, load_dataset

    if find_dataset_file(dataset_info(name)) is None:
        pytest.skip(f"data set {name!r} is not available here")
    return load_dataset(name)


def quiet_fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_model(*args, **kwargs)


def assert_same_indices(ours, theirs, tol=1e-4):
    for key, value in theirs.items():
        if value != value:  # NA
            assert ours[key] != ours[key], key
        else:
            assert ours[key] == pytest.approx(value, abs=tol), key


HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9\n"
PD = ("ind60 =~ x1 + x2 + x3\ndem60 =~ y1 + y2 + y3 + y4\ndem65 =~ y5 + y6 + y7 + y8\ndem60 ~ ind60\n"
      "dem65 ~ ind60 + dem60\ny1 ~~ y5\ny2 ~~ y4 + y6\ny3 ~~ y7\ny4 ~~ y8\ny6 ~~ y8\n")


@pytest.mark.parametrize("name, syntax, semantics", [
    ("holzinger1939", HS, "free"),
    ("holzinger1939", HS, "dag"),
    ("political_democracy", PD, "free"),
    ("political_democracy", "dem60 =~ y1 + y2 + y3 + y4\ndem60 ~ x1 + x2 + x3\n", "free"),
    ("holzinger1939", "visual =~ NA*x1 + a*x1 + a*x2 + x3\nvisual ~~ 1*visual\ntextual =~ x4 + x5 + 0.9*x6\n"
                      "textual ~ visual\nx1 ~~ x4\n", "free"),
])
def test_same_syntax_same_indices(tmp_path, name, syntax, semantics):
    data = dataset(name)
    ours = quiet_fit(syntax, data, latent_covariances=semantics, bounds=False).indices
    assert_same_indices(ours, lavaan_indices(tmp_path, data, syntax, semantics=semantics))


def hs_structure():
    edges = [Edge(f, x) for f, items in (("visual", "x1 x2 x3"), ("textual", "x4 x5 x6"), ("speed", "x7 x8 x9"))
             for x in items.split()]
    edges += [Edge("visual", "textual", "undirected"), Edge("textual", "speed", "directed"),
              Edge("x7", "x8", "covariance")]
    return Structure([f"x{i}" for i in range(1, 10)], ["visual", "textual", "speed"], edges)


@pytest.mark.parametrize("semantics", ["dag", "free"])
def test_exported_structure_fitted_by_lavaan_gives_our_chi2(tmp_path, semantics):
    structure, data = hs_structure(), dataset("holzinger1939")
    ours = quiet_fit(structure, data, latent_covariances=semantics, bounds=False).indices
    exported = to_lavaan(structure, semantics)
    assert "# Undirected latent edges oriented arbitrarily" in exported
    # lavaan's plain sem() defaults: the exported text alone carries the semantics.
    assert_same_indices(ours, lavaan_indices(tmp_path, data, exported))


def test_result_syntax_fitted_by_lavaan_gives_our_chi2(tmp_path):
    data = dataset("holzinger1939")
    result = quiet_fit(HS + "textual ~ visual\nspeed ~ textual\n", data, latent_covariances="dag", bounds=False)
    assert_same_indices(result.indices, lavaan_indices(tmp_path, data, result.syntax))


def test_table3_convention_round_trip_for_byrne1994(tmp_path):
    syntax = ("RA =~ RA1 + RA2\nRC =~ RC1 + RC2\nWO =~ WO1 + WO2\nCC =~ CC1 + CC2 + CC3 + CC4\nDM =~ DM1 + DM2\n"
              "SS =~ SS1 + SS2\nPS =~ PS1 + PS2\nSE =~ SE1 + SE2 + SE3\nELC =~ ELC1 + ELC2 + ELC3 + ELC4 + ELC5\n"
              "EE =~ EE1 + EE2 + EE3\nDP =~ DP1 + DP2\nPA =~ PA1 + PA2 + PA3\nSE ~ DM + SS + PS\nELC ~ DM\n"
              "EE ~ RC + WO + CC\nDP ~ RC + EE\nPA ~ RA + SE + ELC + EE + DP\n")
    structure, data = table_to_structure(parse_lavaan(syntax)), dataset("burnout")
    ours = quiet_fit(structure, data)  # dag semantics, variances bounded at 0
    theirs = lavaan_indices(tmp_path, data, to_lavaan(structure, "dag"), bounded=True)
    assert_same_indices(ours.indices, theirs)
    assert round(theirs["chisq"], 2) == 2946.10
