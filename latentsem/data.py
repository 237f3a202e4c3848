"""Item data: read survey items from CSV/TSV, choose columns, handle missing values.

This is the first step of the data flow (items -> covariance -> search -> fit).
Everything downstream works on :class:`ItemData`: the complete rows of the
chosen item columns as float64, plus how many incomplete rows were removed.

Conventions
-----------
* The delimiter is detected (``csv.Sniffer`` on the header and a few lines,
  then comma / tab / semicolon by consistent field count), because real files
  lie about it: BIG5's ``data.csv`` is tab-separated.
* Only empty fields are missing (``keep_default_na=False``): BIG5's country
  code ``NA`` is Namibia, not a missing value. A numeric missing-value code
  (BIG5 uses 0) is given explicitly with ``missing_code``.
* Incomplete rows are removed listwise (lavaan's ``missing="listwise"``), and
  the number removed is kept in :attr:`ItemData.n_dropped` and logged.
* Covariances use divisor N, as lavaan's ML fit does ("always using N",
  R/lav_fit_rmsea.R); :func:`sample_covariance` is that estimator.

Every problem with the input raises :class:`~latentsem.exceptions.DataError`
with one line naming the columns or rows and the fix.
"""

from __future__ import annotations

import csv
import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .exceptions import DataError

logger = logging.getLogger(__name__)

MIN_ITEMS = 4  # below 4 indicators no one-factor model has positive df
_CANDIDATE_DELIMITERS = (",", "\t", ";")
_SNIFF_LINES = 20
# A covariance whose smallest correlation-matrix eigenvalue is below this
# (relative to the largest) is treated as singular: exact linear dependence
# survives CSV rounding only at about 1e-13, real near-collinearity is far above.
_SINGULAR_RTOL = 1e-10
_BINARY_SUFFIXES = {".xlsx", ".xls", ".sav", ".dta", ".rds", ".rda", ".rdata", ".sas7bdat", ".parquet", ".feather"}


def _shorten(names: Sequence, limit: int = 8) -> str:
    """``['a', 'b', ...]`` with at most ``limit`` names, for one-line messages."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return repr(names)
    return repr(names[:limit])[:-1] + f", ... ({len(names) - limit} more)]"


@dataclass(frozen=True, eq=False)
class ItemData:
    """Complete rows of the chosen item columns, ready for covariance-based fitting.

    Parameters
    ----------
    frame : pandas.DataFrame
        The complete rows, chosen columns in the chosen order, dtype float64.
    n_dropped : int
        Rows removed by listwise deletion.
    source : str
        Where the data came from (a path, ``"<frame>"`` or a data-set name).
    """

    frame: pd.DataFrame = field(repr=False)
    n_dropped: int = 0
    source: str = "<frame>"

    @property
    def n(self) -> int:
        """Number of (complete) rows, the N of every fit index."""
        return int(self.frame.shape[0])

    @property
    def columns(self) -> list[str]:
        """Item names, in column order."""
        return [str(c) for c in self.frame.columns]

    def to_numpy(self) -> np.ndarray:
        """The data as an (n, p) float64 array."""
        return self.frame.to_numpy(dtype=np.float64)

    def covariance(self) -> np.ndarray:
        """Sample covariance with divisor N (lavaan's ML convention)."""
        return sample_covariance(self.to_numpy())

    def correlation(self) -> np.ndarray:
        """Sample correlation matrix (identical for divisor N or N - 1)."""
        cov = self.covariance()
        sd = np.sqrt(np.diag(cov))
        corr = cov / np.outer(sd, sd)
        np.fill_diagonal(corr, 1.0)
        return corr

    def standardized(self) -> np.ndarray:
        """z-scores with the divisor-N standard deviation, so their covariance is the correlation."""
        X = self.to_numpy()
        return (X - X.mean(axis=0)) / X.std(axis=0, ddof=0)

    def __repr__(self):
        return (f"ItemData(n={self.n}, columns={_shorten(self.columns)}, "
                f"n_dropped={self.n_dropped}, source={self.source!r})")


def sample_covariance(X) -> np.ndarray:
    """Sample covariance of the rows of ``X`` with divisor N.

    S = (X - 1 xbar')' (X - 1 xbar') / N, the ML estimate lavaan's fit
    function compares the model-implied covariance with.

    Parameters
    ----------
    X : array-like of shape (n, p)

    Returns
    -------
    numpy.ndarray of shape (p, p)
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise DataError(f"Expected a non-empty 2-D array of rows x items; got shape {X.shape}. Pass one row per respondent.")
    centred = X - X.mean(axis=0)
    return centred.T @ centred / X.shape[0]


# --------------------------------------------------------------------- reading
def read_items(path, columns=None, missing_code=None, delimiter=None) -> ItemData:
    """Read item data from a CSV or TSV file.

    Parameters
    ----------
    path : str or path-like
        A delimited text file with a header row.
    columns : sequence of str or str, optional
        Item columns to use, in this order (a string is split on commas).
        Default: every numeric column.
    missing_code : float, optional
        A value that means "missing" in the chosen columns (BIG5 uses 0).
        Empty fields are always missing.
    delimiter : str, optional
        Field separator; detected from the file when not given.

    Returns
    -------
    ItemData
        Complete rows of the chosen columns (listwise deletion).

    Raises
    ------
    DataError
        For a missing, empty or unreadable file and every problem
        :func:`items_from_frame` checks.
    """
    path = Path(path)
    _check_file(path)
    header, sample = _read_sample(path)
    if delimiter is None:
        delimiter = detect_delimiter(header, sample, path)
    _check_header(path, header, delimiter)
    try:
        frame = pd.read_csv(path, sep=delimiter, keep_default_na=False, na_values=[""],
                            skipinitialspace=True, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise DataError(f"Could not parse {path} with delimiter {delimiter!r} ({detail}); "
                        "check that every row has as many fields as the header or pass the right delimiter.") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} has no header row; the first line must name the item columns.") from None
    return items_from_frame(frame, columns=columns, missing_code=missing_code, source=str(path))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"Data file {path} does not exist; check the path (relative paths start at {Path.cwd()}).")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a data file; give the path of a CSV/TSV file.")
    if path.suffix.lower() in _BINARY_SUFFIXES:
        raise DataError(f"{path} is a {path.suffix} file; export it as CSV (comma- or tab-separated text with a header row) and pass that.")
    if path.stat().st_size == 0:
        raise DataError(f"Data file {path} is empty; it needs a header row and one row per respondent.")


def _read_sample(path: Path) -> tuple[str, list[str]]:
    """The header line and up to ``_SNIFF_LINES`` data lines (whole lines only)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            lines = []
            for line in fh:
                if line.strip():
                    lines.append(line.rstrip("\r\n"))
                if len(lines) > _SNIFF_LINES:
                    break
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text; save it as a UTF-8 CSV file.") from None
    if not lines:
        raise DataError(f"Data file {path} is empty (only blank lines); it needs a header row and one row per respondent.")
    if len(lines) == 1:
        raise DataError(f"Data file {path} has a header row but no data rows; add one row per respondent.")
    return lines[0], lines[1:]


def _field_counts(lines: Iterable[str], delimiter: str) -> list[int]:
    return [len(row) for row in csv.reader(lines, delimiter=delimiter)]


def detect_delimiter(header: str, sample: Sequence[str], path="<data>") -> str:
    """Guess the field separator of a delimited file from its first lines.

    ``csv.Sniffer`` (restricted to comma, tab and semicolon) is tried first and
    accepted when it splits every sampled line into the same number (> 1) of
    fields; otherwise the first candidate that does so is used.
    """
    lines = [header, *sample]
    if not any(d in header for d in _CANDIDATE_DELIMITERS):
        return ","  # a single column; the item-count check reports it
    try:
        sniffed = csv.Sniffer().sniff("\n".join(lines), delimiters="".join(_CANDIDATE_DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    for candidate in ([sniffed] if sniffed else []) + list(_CANDIDATE_DELIMITERS):
        counts = _field_counts(lines, candidate)
        if counts[0] > 1 and len(set(counts)) == 1:
            return candidate
    likely = max(_CANDIDATE_DELIMITERS, key=header.count)
    counts = _field_counts(lines, likely)
    line = next((i for i, c in enumerate(counts) if c != counts[0]), None)
    if line is None:  # e.g. a single quoted header field that contains a comma
        return likely
    raise DataError(f"Rows of {path} have different numbers of fields: the header has {counts[0]} ({likely!r}-separated) "
                    f"but line {line + 1} has {counts[line]}; fix that row or pass the delimiter explicitly.")


def _check_header(path: Path, header: str, delimiter: str) -> None:
    names = [n.strip() for n in next(csv.reader([header], delimiter=delimiter))]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(f"Column names {duplicated} appear more than once in the header of {path}; rename them so each is unique.")


# ------------------------------------------------------------------ validation
def items_from_frame(frame, columns=None, missing_code=None, source="<frame>") -> ItemData:
    """Build :class:`ItemData` from a table, with the same checks as :func:`read_items`.

    Parameters
    ----------
    frame : pandas.DataFrame or 2-D array-like
        One row per respondent. An array gets columns ``x1 .. xp``.
    columns : sequence of str or str, optional
        Item columns, in this order (a string is split on commas). Default:
        every numeric column.
    missing_code : float, optional
        A value meaning "missing" in the chosen columns.
    source : str
        Shown in messages and kept in :attr:`ItemData.source`.

    Returns
    -------
    ItemData
    """
    frame = _as_frame(frame)
    if frame.shape[0] == 0:
        raise DataError(f"{source} has no data rows; give one row per respondent.")
    duplicated = sorted({str(c) for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise DataError(f"Column names {duplicated} appear more than once in {source}; rename them so each is unique.")
    chosen = _choose_columns(frame, columns, source)
    items = _to_float(frame, chosen, source)
    if missing_code is not None:
        items = items.mask(items == float(missing_code))
    _check_finite(items, source)
    _check_all_missing(items, missing_code, source)
    if items.shape[1] < MIN_ITEMS:
        raise DataError(f"Only {items.shape[1]} item column(s) {list(items.columns)} were chosen from {source}; "
                        f"a latent model needs at least {MIN_ITEMS} items, so choose more columns.")
    complete = items.notna().all(axis=1)
    n_dropped = int((~complete).sum())
    items = items.loc[complete].reset_index(drop=True)
    if n_dropped:
        logger.info("Dropped %d of %d rows of %s with missing values (listwise deletion); %d rows remain.",
                    n_dropped, n_dropped + len(items), source, len(items))
    if items.shape[0] == 0:
        raise DataError(f"No complete rows remain in {source} after listwise deletion of {n_dropped} rows; "
                        "drop the columns that are mostly missing or check the missing-value code.")
    _check_constant(items, source)
    _check_duplicated(items, source)
    if items.shape[0] < items.shape[1]:
        raise DataError(f"Only {items.shape[0]} complete rows for {items.shape[1]} items in {source} "
                        f"({n_dropped} dropped as incomplete); the covariance is singular with fewer rows than items, "
                        "so choose fewer columns or collect more data.")
    _check_nonsingular(items, source)
    return ItemData(frame=items, n_dropped=n_dropped, source=str(source))


def _as_frame(frame) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        return frame
    array = np.asarray(frame)
    if array.ndim != 2:
        raise DataError(f"Item data must be a table (rows x items); got an array of shape {array.shape}.")
    return pd.DataFrame(array, columns=[f"x{j + 1}" for j in range(array.shape[1])])


def _choose_columns(frame: pd.DataFrame, columns, source) -> list:
    if columns is None:
        numeric = [c for c in frame.columns
                   if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
        skipped = [c for c in frame.columns if c not in numeric]
        if skipped:
            logger.info("Using the %d numeric columns of %s; skipping non-numeric %s.", len(numeric), source, _shorten(skipped))
        if not numeric:
            raise DataError(f"{source} has no numeric columns; choose the item columns explicitly (columns / --columns).")
        return numeric
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    columns = list(columns)
    if not columns:
        raise DataError("The list of columns is empty; name at least 4 item columns.")
    repeated = sorted({str(c) for c in columns if columns.count(c) > 1})
    if repeated:
        raise DataError(f"Columns {repeated} are listed more than once; name each item once.")
    available = [str(c) for c in frame.columns]
    lookup = {str(c): c for c in frame.columns}
    absent = [c for c in columns if str(c) not in lookup]
    if absent:
        lowered = {name.lower(): name for name in available}  # "e1" should suggest "E1"
        matches = {c: [lowered[m] for m in difflib.get_close_matches(str(c).lower(), list(lowered), n=3, cutoff=0.5)]
                   for c in absent}
        hints = "; ".join(f"{str(c)!r} -> {found}" for c, found in matches.items() if found)
        hint = f"close matches: {hints}" if hints else f"available columns: {_shorten(available, 12)}"
        raise DataError(f"Columns {[str(c) for c in absent]} are not in {source} ({hint}); fix the column names.")
    return [lookup[str(c)] for c in columns]


def _to_float(frame: pd.DataFrame, chosen: list, source) -> pd.DataFrame:
    items = frame.loc[:, chosen]
    bad = []
    converted = {}
    for name in chosen:
        col = items[name]
        if pd.api.types.is_bool_dtype(col):
            bad.append(f"{name!s} (true/false values)")
            continue
        values = pd.to_numeric(col, errors="coerce")
        offending = col.notna() & values.isna()
        if offending.any():
            row = int(np.flatnonzero(offending.to_numpy())[0])
            bad.append(f"{name!s} (row {row + 1}: {col.iloc[row]!r})")
            continue
        converted[str(name)] = values.astype(np.float64)
    if bad:
        raise DataError(f"Columns are not numeric in {source}: {'; '.join(bad)}; "
                        "drop them from the columns or recode the text values as numbers (empty = missing).")
    return pd.DataFrame(converted, index=frame.index)


def _rows_text(mask: np.ndarray) -> str:
    rows = (np.flatnonzero(mask) + 1).tolist()
    return str(rows[:5])[:-1] + (", ...]" if len(rows) > 5 else "]")


def _check_finite(items: pd.DataFrame, source) -> None:
    values = items.to_numpy()
    infinite = np.isinf(values)
    if infinite.any():
        cols = [items.columns[j] for j in np.flatnonzero(infinite.any(axis=0))]
        raise DataError(f"Columns {cols} of {source} hold infinite values (rows {_rows_text(infinite.any(axis=1))}); "
                        "replace them with valid numbers or leave them empty (missing).")


def _check_all_missing(items: pd.DataFrame, missing_code, source) -> None:
    empty = [c for c in items.columns if items[c].isna().all()]
    if empty:
        why = f" (every value is empty or the missing code {missing_code:g})" if missing_code is not None else " (every value is empty)"
        raise DataError(f"Columns {empty} of {source} are entirely missing{why}; drop them from the columns.")


def _check_constant(items: pd.DataFrame, source) -> None:
    values = items.to_numpy()
    constant = [items.columns[j] for j in np.flatnonzero(np.all(values == values[0], axis=0))]
    if constant:
        raise DataError(f"Items {constant} have zero variance in the {len(items)} complete rows of {source}; drop them from the columns.")


def _check_duplicated(items: pd.DataFrame, source) -> None:
    seen = {}
    for name in items.columns:
        key = items[name].to_numpy().tobytes()
        if key in seen:
            raise DataError(f"Items {seen[key]!r} and {name!r} hold identical data in {source}; "
                            "they are the same variable, so drop one of them from the columns.")
        seen[key] = name


def dependent_items(items: pd.DataFrame) -> list[list[str]] | None:
    """Groups of items that are (numerically) exact linear combinations of one another.

    Uses the eigenvectors of the correlation matrix whose eigenvalues vanish
    (relative tolerance ``_SINGULAR_RTOL``): a null vector v has
    sum_j v_j z_j = 0, so the items with non-zero v_j are linearly dependent.
    Returns ``None`` when the covariance is non-singular.
    """
    z = items.to_numpy()
    z = (z - z.mean(axis=0)) / z.std(axis=0, ddof=0)
    corr = z.T @ z / z.shape[0]
    eigval, eigvec = np.linalg.eigh(corr)
    null = eigval <= _SINGULAR_RTOL * eigval[-1]
    if not null.any():
        return None
    groups = []
    for vec in eigvec[:, null].T:
        weights = np.abs(vec)
        members = [str(items.columns[j]) for j in np.flatnonzero(weights > 1e-6 * weights.max())]
        groups.append(members)
    return sorted(groups, key=len)


def _check_nonsingular(items: pd.DataFrame, source) -> None:
    groups = dependent_items(items)
    if groups is None:
        return
    smallest = groups[0]
    more = f" ({len(groups)} independent dependencies in all)" if len(groups) > 1 else ""
    raise DataError(f"The item covariance of {source} is singular: items {_shorten(smallest, 10)} are linearly dependent "
                    f"(one is a weighted sum of the others){more}; drop one of them (e.g. a total score) from the columns.")
