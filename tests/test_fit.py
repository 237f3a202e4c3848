"""Fit indices against lavaan 0.6-14: every fixture value, the REFERENCE golden table, Table 3's convention.

The fixtures come from tests/fixtures/make_lavaan_fixtures.R (committed with
tests/fixtures/lavaan_fixtures.json); the R code that produced each number
is there.
"""

import functools
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from latentsem import fit as fit_module
from latentsem.exceptions import ConvergenceWarning, DataError, NumericalWarning, StructureError
from latentsem.fit import (INDEX_NAMES, _RamModel, cfi, compare_models, fit_model, loglik, ml_discrepancy, rmsea,
                           rmsea_ci, srmr, tli, truncate3)
from latentsem.model import simple_structure
from latentsem.syntax import complete_table, parse_lavaan, table_to_structure

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "lavaan_fixtures.json").read_text())["models"]
TOL = 1e-4  # every index, estimate, SE and standardized value agrees with lavaan to this absolute tolerance


def dataset(name):
    from latentsem.datasets import dataset_info, find_dataset_file, load_dataset

    if find_dataset_file(dataset_info(name)) is None:
        pytest.skip(f"data set {name!r} is not available here (see `latentsem datasets fetch {name}`)")
    return load_dataset(name)


@functools.lru_cache(maxsize=None)
def fixture_fit(name):
    spec = FIXTURES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_model(spec["syntax"], dataset(spec["dataset"]),
                         latent_covariances=spec["latent_covariances"], bounds=spec["bounds"])


# ------------------------------------------------------------ lavaan fixtures
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_index_matches_lavaan(name):
    result = fixture_fit(name)
    assert result.converged is FIXTURES[name]["converged"]
    for key, expected in FIXTURES[name]["indices"].items():
        ours = result.indices[key]
        if expected is None:  # lavaan's NA (the p-value of a model with df = 0)
            assert math.isnan(ours), key
        else:
            assert ours == pytest.approx(expected, abs=TOL), key


@pytest.mark.parametrize("name", sorted(n for n in FIXTURES if "estimates" in FIXTURES[n]))
def test_every_estimate_se_and_std_all_matches_lavaan(name):
    est = fixture_fit(name).estimates
    expected_rows = FIXTURES[name]["estimates"]
    assert len(est) == len(expected_rows)
    for row in expected_rows:
        match = est[(est.lhs == row["lhs"]) & (est.op == row["op"]) & (est.rhs == row["rhs"])]
        if match.empty and row["op"] == "~~":
            match = est[(est.lhs == row["rhs"]) & (est.op == "~~") & (est.rhs == row["lhs"])]
        assert len(match) == 1, row
        ours = match.iloc[0]
        assert bool(ours.free) is row["free"], row
        assert ours.est == pytest.approx(row["est"], abs=TOL), row
        assert ours.std_all == pytest.approx(row["std_all"], abs=TOL), row
        if row["free"]:
            assert ours.se == pytest.approx(row["se"], abs=TOL), row


# REFERENCE.md section 3 (lavaan 0.6-14): chi2, df, RMSEA, CFI, TLI, SRMR, AIC, BIC.
GOLDEN = {
    "hs_cfa": (85.3055, 24, 0.0921, 0.9306, 0.8958, 0.0652, 7517.4899, 7595.3392),
    "bfi_five_factor": (4165.4674, 265, 0.0777, 0.7824, 0.7536, 0.0753, 199800.4764, 200148.3632),
    "pd_bollen": (38.1252, 35, 0.0345, 0.9954, 0.9927, 0.0444, 3157.5819, 3229.4240),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_reference_golden_values(name):
    ix = fixture_fit(name).indices
    keys = ("chisq", "df", "rmsea", "cfi", "tli", "srmr", "aic", "bic")
    assert [ix[k] for k in keys] == pytest.approx(GOLDEN[name], abs=TOL)


def test_bfi_uses_listwise_n():
    assert fixture_fit("bfi_five_factor").indices["n"] == 2436


# ----------------------------------------------------- Table 3's convention
def test_goldberg_table3_convention():
    result = fixture_fit("goldberg_orthogonal_table3")
    assert result.indices["n"] == 19718
    assert result.table3() == {"rmsea": 0.072, "cfi": 0.767, "tli": 0.746}


def test_byrne1994_as_a_structure_under_dag_semantics_and_bounds():
    structure = table_to_structure(parse_lavaan(FIXTURES["byrne1994_dag_table3"]["syntax"]))
    with pytest.warns(NumericalWarning, match="Heywood"):
        result = fit_model(structure, dataset("burnout"))  # a Structure defaults to dag semantics, bounds=True
    assert result.latent_covariances == "dag" and result.bounds
    assert (round(result.indices["chisq"], 2), result.indices["df"]) == (2946.10, 450)
    assert result.table3() == {"rmsea": 0.096, "cfi": 0.753, "tli": 0.727}


MULTITASKING_GROUP_MODEL = """
L1 =~ Error_Number + Error_Letter + Error_Figure
L2 =~ AverageQus_Par1 + AverageQus_Par2 + AverageQus_Par3
L3 =~ Speed_Number + Speed_Letter + Speed_Figure + AverageQus_Par1
L4 =~ Speed_Number + Speed_Letter + Speed_Figure + AverageQus_Par1
L2 ~ L1 + L3 + L4
"""


def test_latents_sharing_their_items_are_fitted_past_the_symmetric_saddle():
    # L3 and L4 (an LGES two-latent group) have the same items. From identical starts semopy keeps them
    # identical and stops at the saddle where they act as one latent (chi2 51.02); the optimum, which
    # latentsem's own engine reaches, is chi2 31.01.
    from latentsem.score import saturated_f, score_ML

    data = dataset("multitasking")
    structure = table_to_structure(parse_lavaan(MULTITASKING_GROUP_MODEL))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_model(structure, data)
        S = data.frame[list(structure.observed)].cov(ddof=0).to_numpy()
        engine = score_ML(structure, S, data.n, random_state=0)
    assert result.indices["df"] == 19
    assert abs(result.indices["chisq"] - 2 * data.n * (engine.f - saturated_f(S))) < 0.01
    assert result.indices["chisq"] < 31.1
    assert result.table3() == {"rmsea": 0.055, "cfi": 0.987, "tli": 0.976}


def test_latents_sharing_their_items_start_from_the_engine_optimum(monkeypatch):
    # Without the asymmetric start patterns the engine's optimum, moved to the table's marker scale,
    # is the only start besides semopy's own: it alone must reach the optimum.
    import latentsem.fit as fit_module

    monkeypatch.setattr(fit_module, "GROUP_START_VARIANTS", ())
    structure = table_to_structure(parse_lavaan(MULTITASKING_GROUP_MODEL))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_model(structure, dataset("multitasking"))
    assert result.converged
    assert abs(result.indices["chisq"] - 31.007) < 0.01


def test_unbounded_fit_reports_negative_variances_as_heywood_cases():
    result = fixture_fit("byrne1994_dag_unbounded")
    assert "variance of RC2 is negative (-1.172)" in result.heywood
    assert any(h.startswith("standardized loading RC =~ RC2 is 1.30") for h in result.heywood)


def test_zero_bounded_variance_warns():
    spec = FIXTURES["himi_second_order_bounded"]
    with pytest.warns(NumericalWarning, match="variance of Question is at the zero bound"):
        result = fit_model(spec["syntax"], dataset("multitasking"), bounds=True)
    assert any(h.startswith("variance of Question is at the zero bound") for h in result.heywood)


# ---------------------------------------------------------- pure functions
@pytest.mark.parametrize("x, expected", [(0.76753, 0.767), (0.767, 0.767), (0.0729999, 0.072), (0.9999, 0.999),
                                         (-0.0015, -0.001), (1.0, 1.0)])
def test_truncate3(x, expected):
    assert truncate3(x) == expected


def test_truncate3_passes_nan_through():
    assert math.isnan(truncate3(float("nan")))


def test_cfi_is_clamped_and_tli_is_not():
    assert cfi(10.0, 20, 100.0, 30) == 1.0
    assert tli(10.0, 20, 100.0, 30) == pytest.approx(1 + 300 / 1400)
    assert cfi(200.0, 20, 100.0, 30) == 0.0
    assert cfi(50.0, 20, 100.0, 30) == pytest.approx(1 - 30 / 70)


def test_rmsea_uses_n_and_is_zero_below_df():
    assert rmsea(85.3055, 24, 301) == pytest.approx(math.sqrt((85.3055 - 24) / (24 * 301)))
    assert rmsea(20.0, 24, 301) == 0.0
    assert rmsea(5.0, 0, 301) == 0.0


def test_rmsea_ci_inverts_the_noncentral_chi_square():
    from scipy.stats import ncx2

    chisq, df, n = 85.3055, 24, 301
    lower, upper = rmsea_ci(chisq, df, n)
    assert ncx2.cdf(chisq, df, lower ** 2 * n * df) == pytest.approx(0.95, abs=1e-9)
    assert ncx2.cdf(chisq, df, upper ** 2 * n * df) == pytest.approx(0.05, abs=1e-9)
    assert rmsea_ci(30.0, 35, 75)[0] == 0.0  # P(chi2_35 <= 30) < 0.95: the lower bound is 0


def test_discrepancy_loglik_srmr_at_the_saturated_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    S = np.cov(X, rowvar=False, bias=True)
    assert ml_discrepancy(S, S) == pytest.approx(0.0, abs=1e-12)
    assert srmr(S, S) == 0.0
    p, n = 4, 200
    assert loglik(S, S, n) == pytest.approx(-n / 2 * (p * math.log(2 * math.pi) + np.linalg.slogdet(S)[1] + p))


def test_srmr_is_scale_free():
    rng = np.random.default_rng(1)
    S = np.cov(rng.normal(size=(100, 3)), rowvar=False, bias=True)
    Sigma = np.diag(np.diag(S))
    D = np.diag([1.0, 10.0, 0.1])
    assert srmr(D @ S @ D, D @ Sigma @ D) == pytest.approx(srmr(S, Sigma), rel=1e-12)


def test_sigma_derivatives_match_finite_differences():
    full = complete_table(parse_lavaan(FIXTURES["pd_bollen"]["syntax"]), "free")
    rng = np.random.default_rng(2)
    S = np.eye(len(full.observed))
    ram = _RamModel(full, S)
    theta = rng.uniform(0.2, 0.8, ram.npar)
    analytic = ram.sigma_derivatives(theta)
    h = 1e-6
    for k in range(ram.npar):
        step = np.zeros(ram.npar)
        step[k] = h
        numeric = (ram.implied(theta + step)[0] - ram.implied(theta - step)[0]) / (2 * h)
        np.testing.assert_allclose(analytic[k], numeric, atol=1e-7)


# -------------------------------------------------------------- behaviour
HS = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\nspeed =~ x7 + x8 + x9"
HS_STRUCTURE = simple_structure({"visual": ["x1", "x2", "x3"], "textual": ["x4", "x5", "x6"],
                                 "speed": ["x7", "x8", "x9"]})


def test_structure_defaults_to_dag_and_syntax_to_free():
    data = dataset("holzinger1939")
    dag = fit_model(HS_STRUCTURE, data)
    assert dag.latent_covariances == "dag"
    assert dag.indices["chisq"] == pytest.approx(FIXTURES["hs_orthogonal"]["indices"]["chisq"], abs=TOL)
    free = fit_model(HS_STRUCTURE, data, latent_covariances="free")
    assert free.indices["chisq"] == pytest.approx(FIXTURES["hs_cfa"]["indices"]["chisq"], abs=TOL)
    assert fixture_fit("hs_cfa").latent_covariances == "free"


def test_result_syntax_carries_its_semantics():
    # The syntax of a dag fit, read with lavaan's defaults ("free"), is the same model.
    dag = fixture_fit("hs_structural_dag")
    again = fit_model(dag.syntax, dataset("holzinger1939"), latent_covariances="free", bounds=False)
    assert again.indices["chisq"] == pytest.approx(dag.indices["chisq"], abs=1e-6)
    assert again.indices["df"] == dag.indices["df"]


def test_model_naming_an_absent_column_raises_data_error():
    with pytest.raises(DataError, match=r"The model names \['zz'\], which is not a column of the data"):
        fit_model("F =~ x1 + zz + x3", dataset("holzinger1939"))


def test_underidentified_model_is_refused():
    with pytest.raises(StructureError, match=r"4 free parameters but only 3 sample moments \(df = -1\)"):
        fit_model("F =~ x1 + x2", dataset("holzinger1939"))


def test_non_convergence_is_flagged(monkeypatch):
    monkeypatch.setattr(fit_module, "_SOLVER_OPTIONS", {"ftol": 1e-12, "maxiter": 1})
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = fit_model(HS, dataset("holzinger1939"))
    assert result.converged is False
    assert any("did not converge" in w for w in result.warnings)


def test_dataframe_input_is_accepted():
    data = dataset("holzinger1939")
    result = fit_model(HS, data.frame)
    assert result.indices["chisq"] == pytest.approx(85.3055, abs=TOL)


def test_json_and_summary():
    result = fixture_fit("hs_just_identified")
    payload = json.loads(result.to_json())
    assert list(payload["indices"]) == list(INDEX_NAMES)
    assert payload["indices"]["pvalue"] is None and payload["indices"]["df"] == 0
    assert payload["estimates"][0] == {**payload["estimates"][0], "lhs": "visual", "op": "=~", "rhs": "x1", "free": False}
    text = fixture_fit("hs_cfa").summary()
    assert "Test statistic (chi-square)                   85.306" in text
    assert "RMSEA 0.092 / CFI 0.930 / TLI 0.895" in text


def test_compare_models_marks_the_best_values():
    data = dataset("holzinger1939")
    one = "g =~ x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9"
    comparison = compare_models({"three": HS, "one": one}, data)
    assert comparison.best == {"rmsea": "three", "cfi": "three", "tli": "three", "srmr": "three", "aic": "three",
                               "bic": "three"}
    assert comparison.table.loc["one", "df"] == 27
    row = next(line for line in comparison.summary().splitlines() if line.startswith("three"))
    assert row.count("*") == 6


def test_compare_models_does_not_rank_aic_across_item_sets():
    data = dataset("holzinger1939")
    comparison = compare_models({"nine": HS, "six": "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6"}, data)
    assert "aic" not in comparison.best and "bic" not in comparison.best
    assert comparison.notes == ["the models use different items, so AIC and BIC are not comparable and are not ranked"]


def test_semopy_is_imported_lazily():
    code = ("import sys, latentsem.fit, latentsem.syntax, latentsem.cli.fit, latentsem.cli.compare, "
            "latentsem.cli.export; print('semopy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def test_empty_structure_is_refused_with_one_line():
    """A structure with no latent variables and no paths has nothing to fit (semopy would crash)."""
    from latentsem.datasets import load_dataset
    from latentsem.exceptions import StructureError
    from latentsem.model import Structure

    data = load_dataset("holzinger1939")
    with pytest.raises(StructureError, match="nothing to fit"):
        fit_model(Structure(data.columns, [], []), data)


def test_semopy_cross_check_tolerates_rounding_but_not_another_model():
    """fit._check_same_model: semopy's Sigma against ours at the estimate (1e-7 of the scale)."""
    from types import SimpleNamespace

    from latentsem.exceptions import LatentsemError
    from latentsem.fit import _check_same_model

    ours = np.array([[2.0, 0.8, 0.0], [0.8, 1.5, 0.3], [0.0, 0.3, 1.0]])
    ram = SimpleNamespace(observed=["a", "b", "c"], implied=lambda theta: (ours, None))

    def semopy_model(sigma):  # semopy lists the observed variables in its own order
        order = [2, 0, 1]
        return SimpleNamespace(vars={"observed": ["c", "a", "b"]},
                               calc_sigma=lambda: (sigma[np.ix_(order, order)], None))

    rounding = ours.copy()
    rounding[0, 2] = rounding[2, 0] = 4.1e-9  # the Big Five case: an element that is 0 in ours
    _check_same_model(semopy_model(rounding), ram, None)
    other = ours.copy()
    other[0, 1] = other[1, 0] = 0.8 + 1e-5
    with pytest.raises(LatentsemError, match="semopy fitted a different model"):
        _check_same_model(semopy_model(other), ram, None)
