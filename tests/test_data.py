"""Tests of latentsem.data: reading, column choice, missing values and every input check."""

import logging

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from latentsem.data import ItemData, items_from_frame, read_items, sample_covariance
from latentsem.exceptions import DataError


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


@pytest.fixture
def frame(rng):
    """60 respondents, 5 correlated items q1..q5 on a 1-5 scale plus a text column."""
    factor = rng.normal(size=(60, 1))
    items = np.clip(np.round(3 + factor + rng.normal(size=(60, 5))), 1, 5)
    df = pd.DataFrame(items, columns=[f"q{j}" for j in range(1, 6)])
    df.insert(0, "country", ["NA", "US", "DE"] * 20)
    return df


def write(path, df, sep=","):
    df.to_csv(path, sep=sep, index=False)
    return path


# ------------------------------------------------------------------- numerics
def test_sample_covariance_uses_divisor_n(rng):
    X = rng.normal(size=(37, 4))
    centred = X - X.mean(axis=0)
    assert_allclose(sample_covariance(X), centred.T @ centred / 37, rtol=1e-12)
    assert_allclose(sample_covariance(X), np.cov(X, rowvar=False) * 36 / 37, rtol=1e-12)


def test_itemdata_moments_are_consistent(frame):
    data = items_from_frame(frame)
    X = frame[data.columns].to_numpy()
    assert_allclose(data.covariance(), np.cov(X, rowvar=False, bias=True), rtol=1e-12)
    assert_allclose(data.correlation(), np.corrcoef(X, rowvar=False), rtol=1e-12)
    z = data.standardized()
    assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    assert_allclose(z.std(axis=0, ddof=0), 1, rtol=1e-12)
    # z-scores with divisor N have the correlation matrix as their divisor-N covariance
    assert_allclose(sample_covariance(z), data.correlation(), rtol=1e-10)


def test_itemdata_properties_and_dtype(frame):
    data = items_from_frame(frame, source="survey")
    assert data.n == 60 and data.columns == ["q1", "q2", "q3", "q4", "q5"]
    assert all(dtype == np.float64 for dtype in data.frame.dtypes)
    assert data.source == "survey" and data.n_dropped == 0
    assert "n=60" in repr(data)


# -------------------------------------------------------------------- reading
@pytest.mark.parametrize("sep", [",", "\t", ";"])
def test_delimiter_is_detected_whatever_the_extension(tmp_path, frame, sep):
    path = write(tmp_path / "items.csv", frame, sep=sep)  # a tab-separated ".csv", like BIG5
    data = read_items(path)
    assert data.columns == ["q1", "q2", "q3", "q4", "q5"]
    assert_allclose(data.frame.to_numpy(), frame[data.columns].to_numpy())


def test_text_na_is_a_value_not_missing(tmp_path, frame):
    """Country code "NA" (Namibia) must not turn a row into a missing one."""
    path = write(tmp_path / "items.csv", frame)
    raw = pd.read_csv(path, keep_default_na=False)
    assert (raw["country"] == "NA").sum() == 20
    data = read_items(path)
    assert data.n == 60 and data.n_dropped == 0


def test_explicit_columns_keep_their_order(tmp_path, frame):
    data = read_items(write(tmp_path / "items.csv", frame), columns=["q5", "q1", "q3", "q2"])
    assert data.columns == ["q5", "q1", "q3", "q2"]
    assert_allclose(data.frame["q5"], frame["q5"])


def test_columns_given_as_comma_separated_string(frame):
    assert items_from_frame(frame, columns="q4, q3,q2,q1").columns == ["q4", "q3", "q2", "q1"]


def test_missing_code_and_listwise_deletion(tmp_path, frame, caplog):
    frame.loc[[3, 10], "q2"] = 0  # 0 = missed, as in BIG5
    frame.loc[7, "q5"] = np.nan  # an empty field
    path = write(tmp_path / "items.csv", frame)
    with caplog.at_level(logging.INFO, logger="latentsem.data"):
        data = read_items(path, missing_code=0)
    assert data.n == 57 and data.n_dropped == 3
    assert "Dropped 3 of 60 rows" in caplog.text
    assert not (data.frame == 0).any().any()
    # the missing code applies only to the chosen columns and only when given
    assert read_items(path).n == 59


def test_items_from_array_names_columns(rng):
    data = items_from_frame(rng.normal(size=(30, 4)))
    assert data.columns == ["x1", "x2", "x3", "x4"]


# --------------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"Data file .*nope\.csv does not exist; check the path"):
        read_items(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty; it needs a header row"):
        read_items(tmp_path / "empty.csv")


def test_header_without_rows(tmp_path):
    (tmp_path / "h.csv").write_text("a,b,c,d\n")
    with pytest.raises(DataError, match=r"has a header row but no data rows"):
        read_items(tmp_path / "h.csv")


def test_ragged_rows(tmp_path):
    (tmp_path / "r.csv").write_text("a,b,c,d\n1,2,3,4\n1,2,3\n1,2,3,4\n")
    with pytest.raises(DataError, match=r"Rows of .*r\.csv have different numbers of fields: the header has 4 \(','-separated\) but line 3 has 3"):
        read_items(tmp_path / "r.csv")
    (tmp_path / "r2.csv").write_text("a,b,c,d\n" + "1,2,3,4\n" * 30 + "1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"Could not parse .*r2\.csv with delimiter ',' \(.*Expected 4 fields in line 32, saw 5\)"):
        read_items(tmp_path / "r2.csv")


def test_folder_and_spreadsheet_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"is a folder, not a data file"):
        read_items(tmp_path)
    (tmp_path / "s.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"is a \.xlsx file; export it as CSV"):
        read_items(tmp_path / "s.xlsx")


def test_duplicated_header_names(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,a,c,d\n1,2,3,4,5\n2,3,4,5,6\n")
    with pytest.raises(DataError, match=r"Column names \['a'\] appear more than once in the header"):
        read_items(tmp_path / "d.csv")


def test_absent_column_names_close_matches(frame):
    with pytest.raises(DataError, match=r"Columns \['q6', 'Q1'\] are not in survey \(close matches: 'q6' -> \['q5', 'q4', 'q3'\]; 'Q1' -> \['q1', .*\]\); fix the column names\.$"):
        items_from_frame(frame, columns=["q1", "q6", "q2", "Q1"], source="survey")
    with pytest.raises(DataError, match=r"Columns \['zzz'\] are not in survey \(available columns: \['country', 'q1', "):
        items_from_frame(frame, columns=["q1", "q2", "q3", "zzz"], source="survey")


def test_non_numeric_column(frame):
    frame["q3"] = frame["q3"].astype(object)
    frame.loc[4, "q3"] = "n/a"
    with pytest.raises(DataError, match=r"Columns are not numeric in <frame>: q3 \(row 5: 'n/a'\); country \(row 1: 'NA'\)"):
        items_from_frame(frame, columns=["q1", "q2", "q3", "country"])


def test_constant_column(frame):
    frame["q4"] = 3.0
    with pytest.raises(DataError, match=r"Items \['q4'\] have zero variance in the 60 complete rows"):
        items_from_frame(frame)


def test_constant_after_listwise_deletion(frame):
    frame["q6"] = 2.0
    frame.loc[0, "q6"] = 5.0
    frame.loc[0, "q1"] = np.nan  # the only row that varies is incomplete
    with pytest.raises(DataError, match=r"Items \['q6'\] have zero variance in the 59 complete rows"):
        items_from_frame(frame)


def test_all_missing_column(frame):
    frame["q2"] = 0.0
    with pytest.raises(DataError, match=r"Columns \['q2'\] of <frame> are entirely missing \(every value is empty or the missing code 0\)"):
        items_from_frame(frame, missing_code=0)


def test_duplicated_columns_name_the_pair(frame):
    frame["q6"] = frame["q2"]
    with pytest.raises(DataError, match=r"Items 'q2' and 'q6' hold identical data"):
        items_from_frame(frame)


def test_infinite_values(frame):
    frame.loc[[2, 9], "q5"] = np.inf
    with pytest.raises(DataError, match=r"Columns \['q5'\] of <frame> hold infinite values \(rows \[3, 10\]\)"):
        items_from_frame(frame)


def test_fewer_than_four_items(frame):
    with pytest.raises(DataError, match=r"Only 3 item column\(s\) \['q1', 'q2', 'q3'\] .* at least 4 items"):
        items_from_frame(frame, columns=["q1", "q2", "q3"])


def test_fewer_rows_than_items(rng):
    df = pd.DataFrame(rng.normal(size=(8, 6)), columns=list("abcdef"))
    df.loc[[0, 1, 2, 3], "a"] = np.nan
    with pytest.raises(DataError, match=r"Only 4 complete rows for 6 items in <frame> \(4 dropped as incomplete\)"):
        items_from_frame(df)


def test_no_complete_rows(rng):
    df = pd.DataFrame(rng.normal(size=(6, 4)), columns=list("abcd"))
    df.loc[[0, 1, 2], "a"] = np.nan
    df.loc[[3, 4, 5], "b"] = np.nan
    with pytest.raises(DataError, match=r"No complete rows remain in <frame> after listwise deletion of 6 rows"):
        items_from_frame(df)


def test_singular_covariance_names_the_dependent_items(rng):
    df = pd.DataFrame(rng.normal(size=(50, 5)), columns=["a", "b", "c", "d", "e"])
    df["total"] = df["a"] + 2 * df["c"] - df["d"]  # a sum score next to its parts
    with pytest.raises(DataError, match=r"singular: items \['a', 'c', 'd', 'total'\] are linearly dependent"):
        items_from_frame(df)


def test_singular_after_csv_rounding(tmp_path, rng):
    """A total written with 6 decimals is still detected (eigenvalue ~1e-13, far below real collinearity)."""
    df = pd.DataFrame(rng.normal(size=(40, 4)).round(3), columns=["a", "b", "c", "d"])
    df["sum"] = df.sum(axis=1)
    path = tmp_path / "s.csv"
    df.to_csv(path, index=False, float_format="%.6f")
    with pytest.raises(DataError, match=r"items \['a', 'b', 'c', 'd', 'sum'\] are linearly dependent"):
        read_items(path)


def test_highly_correlated_but_regular_items_pass(rng):
    base = rng.normal(size=(200, 1))
    df = pd.DataFrame(base + 1e-3 * rng.normal(size=(200, 4)), columns=list("abcd"))
    assert items_from_frame(df).n == 200


def test_itemdata_is_frozen(frame):
    data = items_from_frame(frame)
    with pytest.raises(AttributeError):
        data.n_dropped = 5
    assert isinstance(data, ItemData)
