"""Table 3 of the LGES paper (Dong et al., arXiv 2510.04378): the literature models on the real data.

Convention of that table (REFERENCE.md section 1): dag latent covariances (lavaan
``orthogonal=TRUE``: latents without an edge are independent), ML with variances
bounded at >= 0 (lavaan ``bounds="pos.var"``), RMSEA / CFI / TLI truncated to 3
decimals. Goldberg (1993) and Byrne (1994) reproduce the published rows exactly;
for Byrne (2010) and Himi et al. (2019b) the rows are not pinned to a unique
specification and the tests check the documented closest values
(/work/shared/datasets/LITERATURE_MODELS.md, lavaan 0.6-14 figures).
Skipped when the shared data are not beside the checkout.
"""
import warnings
from pathlib import Path

import pytest

from latentsem import datasets as ds
from latentsem.fit import fit_model

LAV = Path(__file__).resolve().parents[1] / "datasets"

pytestmark = pytest.mark.slow


def load(name):
    if ds.find_dataset_file(ds.DATASETS[name]) is None:
        pytest.skip(f"data set {name} not found in {ds.search_roots()}")
    return ds.load_dataset(name)


def fit_lav(relative, data, bounds=True, extra=""):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_model((LAV / relative).read_text(encoding="utf-8") + extra, data,
                         latent_covariances="dag", bounds=bounds)


def test_goldberg_1993_reproduces_table3_row():
    fit = fit_lav("bigfive/goldberg1993.lav", load("bigfive"))
    assert fit.indices["df"] == 275
    assert fit.indices["chisq"] == pytest.approx(28563.10, abs=0.05)   # lavaan orthogonal=TRUE
    assert fit.table3() == {"rmsea": 0.072, "cfi": 0.767, "tli": 0.746}


def test_byrne_1994_reproduces_table3_row():
    fit = fit_lav("burnout/byrne1994.lav", load("burnout"))
    assert fit.indices["df"] == 450
    # 2946.10 under the bound; lavaan's unbounded 2944.64 truncates to TLI 0.728, not Table 3's 0.727.
    assert fit.indices["chisq"] == pytest.approx(2946.10, abs=0.05)
    assert fit.table3() == {"rmsea": 0.096, "cfi": 0.753, "tli": 0.727}


def test_byrne_2010_documented_combination_hits_table3_row():
    """LITERATURE_MODELS.md's example of the 8 specifications said to hit Table 3's "Byrne (2010)" row
    (0.072 / 0.861 / 0.847; not a unique match): the respecified model without ELC ~~ PA, plus CC ~~ PS,
    DM ~~ SS and DM ~~ PS. CFI and TLI match under truncation; RMSEA 0.07197 matches only when rounded
    (truncated it is 0.071), so the row is not reproduced under the Table-3 convention."""
    text = (LAV / "burnout/byrne2010_respecified.lav").read_text(encoding="utf-8")
    text = text.replace("ELC ~~ PA", "") + "\nCC ~~ PS\nDM ~~ SS\nDM ~~ PS\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_model(text, load("burnout"), latent_covariances="dag", bounds=True)
    assert fit.indices["df"] == 451
    assert fit.indices["chisq"] == pytest.approx(1850.21, abs=0.05)
    assert [fit.indices[k] for k in ("rmsea", "cfi", "tli")] == pytest.approx([0.07197, 0.86163, 0.84782], abs=1e-3)
    assert fit.table3() == {"rmsea": 0.071, "cfi": 0.861, "tli": 0.847}


def test_himi_second_order_is_closest_match_under_bounds():
    """Bounded, the Question disturbance sits at zero: chi2(24) = 61.445, 0.0879 / 0.9617 / 0.9426."""
    fit = fit_lav("multitasking/himi2019_second_order.lav", load("multitasking"))
    assert fit.indices["df"] == 24
    assert fit.indices["chisq"] == pytest.approx(61.445, abs=0.01)
    assert [fit.indices[k] for k in ("rmsea", "cfi", "tli")] == pytest.approx([0.0879, 0.9617, 0.9426], abs=1e-3)
    assert fit.table3() == {"rmsea": 0.087, "cfi": 0.961, "tli": 0.942}
    assert any("Question" in h and "zero bound" in h for h in fit.heywood)


def test_himi_second_order_unbounded_reaches_correlated_optimum():
    """Unbounded, the just-identified second level reproduces the correlated CFA (chi2 58.518), not lavaan's
    raw-scale stop at 64.47, with a negative Question disturbance variance."""
    fit = fit_lav("multitasking/himi2019_second_order.lav", load("multitasking"), bounds=False)
    assert fit.indices["chisq"] == pytest.approx(58.518, abs=0.01)
    est = fit.estimates
    row = est[(est["lhs"] == "Question") & (est["op"] == "~~") & (est["rhs"] == "Question")]
    assert float(row["est"].iloc[0]) < 0
