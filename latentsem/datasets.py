"""The registry of real data sets: where each file is, how to load it, how to get it.

Each data set has a human-readable card, ``datasets/<name>.md`` at the
repository root, and an entry in :data:`DATASETS` holding the same facts in
machine-readable form: the file within its folder, its sha256, the item
columns, the missing-value code, the preprocessing and where to fetch it.
Literature models (lavaan syntax) live in ``datasets/<name>/*.lav``.

The data files themselves are never part of the repository. A file
``<folder>/<filename>`` is looked up, first match wins, in

1. ``$LATENTSEM_DATA`` (a folder laid out like the shared ``datasets`` folder),
2. the user cache directory (:func:`cache_dir`), where :func:`fetch_dataset`
   puts downloads,
3. ``../shared/datasets`` relative to the current working directory,
4. ``../shared/datasets`` relative to the repository root.

The file found is checked against its sha256 before use (as pooch does): a
changed file is an error, never silently used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from .data import ItemData, read_items
from .exceptions import DataError

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
CARDS_DIR = REPO_ROOT / "datasets"
ENV_VAR = "LATENTSEM_DATA"
_DOWNLOAD_TIMEOUT_S = 60
_RSCRIPT_TIMEOUT_S = 120


@dataclass(frozen=True)
class Dataset:
    """One registered data set (the machine-readable half of its card).

    Attributes
    ----------
    name : str
        Registry name (``latentsem datasets info NAME``).
    folder, filename : str
        The file is ``<folder>/<filename>`` under each search root.
    sha256 : str
        Checksum of the file, verified before every use.
    delimiter : str
        Field separator (BIG5's ``data.csv`` is tab-separated).
    columns : tuple of str
        Item columns used, in model order.
    missing_code : float or None
        Value meaning "missing" in the item columns (besides empty fields).
    preprocessing : tuple of str
        Steps applied after listwise deletion; ``"rescale"`` divides each item
        by its standard deviation (divisor N).
    n_rows : int
        Rows analysed (after listwise deletion on ``columns``).
    file_shape : tuple of int
        Data rows x columns of the whole file.
    url : str or None
        Public address :func:`fetch_dataset` downloads from.
    r_export : tuple of str or None
        ``(package, object)`` when the file is an R data set exported with
        ``write.csv(..., row.names=FALSE, na="")``; used by
        :func:`fetch_dataset` when there is no URL.
    description, citation, licence : str
        Card facts.
    model_files : tuple of (str, str)
        Literature models: name and path relative to ``datasets/``.
    """

    name: str
    folder: str
    filename: str
    sha256: str
    delimiter: str
    columns: tuple
    missing_code: float | None
    preprocessing: tuple
    n_rows: int
    file_shape: tuple
    url: str | None
    r_export: tuple | None
    description: str
    citation: str
    licence: str
    model_files: tuple = ()

    @property
    def relative_path(self) -> str:
        """``<folder>/<filename>``, the file's place under every search root."""
        return f"{self.folder}/{self.filename}"

    @property
    def card_path(self) -> Path:
        """The Markdown card, ``datasets/<name>.md``."""
        return CARDS_DIR / f"{self.name}.md"

    @property
    def models(self) -> dict:
        """Literature models: name -> path of its lavaan syntax file."""
        return {model: CARDS_DIR / rel for model, rel in self.model_files}

    @property
    def n_items(self) -> int:
        return len(self.columns)

    def summary(self) -> str:
        """The card facts as aligned ``key: value`` lines."""
        found = find_dataset_file(self)
        rows = [
            ("name", self.name),
            ("description", self.description),
            ("file", f"{self.relative_path} ({self.file_shape[0]} rows x {self.file_shape[1]} columns, "
                     f"delimiter {self.delimiter!r})"),
            ("sha256", self.sha256),
            ("items", f"{self.n_items}: {', '.join(self.columns)}"),
            ("missing code", "none (empty fields only)" if self.missing_code is None else f"{self.missing_code:g}, plus empty fields"),
            ("rows analysed", f"{self.n_rows} (listwise deletion on the items)"),
            ("preprocessing", ", ".join(_PREPROCESSING_TEXT[s] for s in self.preprocessing) or "none"),
            ("source", self.citation),
            ("fetch from", self.url or (f"R: data({self.r_export[1]}, package=\"{self.r_export[0]}\")" if self.r_export else "not available")),
            ("licence", self.licence),
            ("card", str(self.card_path)),
            ("path", str(found) if found else f"not found (run `latentsem datasets fetch {self.name}` or set {ENV_VAR})"),
        ]
        for model, path in self.models.items():
            rows.append((f"model {model}", str(path) + ("" if path.exists() else " (missing)")))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows)


_PREPROCESSING_TEXT = {
    "rescale": "each item divided by its standard deviation (fit indices are scale-invariant)",
}


def _items(prefixes, numbers):
    return tuple(f"{p}{i}" for p in prefixes for i in numbers)


_BIG5_URL = ("https://raw.githubusercontent.com/Knightmare2002/Big-Five-Test/"
             "a206cb6f75183fe4eeee59b821d44264ec5cf843/BIG5/data.csv")
_SCM_IDENTIFY = "https://raw.githubusercontent.com/dongxinshuai/scm-identify/6a6366bafc906f932566409557299dccc6973690/Data/"
_BIG5_COMMON = dict(
    folder="big5", filename="data.csv",
    sha256="ccf2440c364b7cf4aa131b83968084aa7c7388be5808ff1920a27b3d6a07f3d9",
    delimiter="\t", missing_code=0.0, preprocessing=(), n_rows=19718, file_shape=(19719, 57),
    url=_BIG5_URL, r_export=None,
    citation="openpsychometrics.org BIG5 (IPIP Big-Five Factor Markers, Goldberg 1992), copy from GitHub "
             "Knightmare2002/Big-Five-Test commit a206cb6",
    licence="no licence stated; openpsychometrics.org publishes its raw data openly; check its terms before redistributing",
)

DATASETS = {
    "bigfive": Dataset(
        name="bigfive", columns=_items("ENACO", range(1, 6)),
        description="BIG5 online IPIP survey, first 5 items per trait (25 items, 1-5 scale; 0 = missed)",
        model_files=(("goldberg1993", "bigfive/goldberg1993.lav"),),
        **_BIG5_COMMON),
    "bigfive50": Dataset(
        name="bigfive50", columns=_items("ENACO", range(1, 11)),
        description="BIG5 online IPIP survey, all 50 items (1-5 scale; 0 = missed)",
        **_BIG5_COMMON),
    "burnout": Dataset(
        name="burnout", folder="burnout", filename="Teacher_Burnout_data.csv",
        sha256="fffd8332bcb5aefd816528abab674569b9ff2bb22252d18160c3867c2e186d51",
        delimiter=",",
        columns=("RA1", "RA2", "RC1", "RC2", "WO1", "WO2", "CC1", "CC2", "CC3", "CC4", "DM1", "DM2", "SS1", "SS2",
                 "PS1", "PS2", "SE1", "SE2", "SE3", "ELC1", "ELC2", "ELC3", "ELC4", "ELC5", "EE1", "EE2", "EE3",
                 "DP1", "DP2", "PA1", "PA2", "PA3"),
        missing_code=None, preprocessing=(), n_rows=599, file_shape=(599, 32),
        url=_SCM_IDENTIFY + "Teacher_Burnout_data.csv", r_export=None,
        description="Byrne's teacher-burnout data, elementary calibration sample (32 item parcels)",
        citation="Byrne (1994), AERJ 31(3):645-673; file from GitHub dongxinshuai/scm-identify (LGES/RLCD code) commit 6a6366b",
        licence="repository Apache-2.0; no separate data licence stated (Byrne's textbook example data)",
        model_files=(("byrne1994", "burnout/byrne1994.lav"), ("byrne2010", "burnout/byrne2010.lav"),
                     ("byrne2010_respecified", "burnout/byrne2010_respecified.lav"))),
    "multitasking": Dataset(
        name="multitasking", folder="multitasking", filename="Final_Multitasking_Data.csv",
        sha256="3f2f6ee4878deaf191b451034c0bb1d7bd5de121961af71d6f9e891485de496e",
        delimiter=",",
        columns=("Speed_Number", "Speed_Letter", "Speed_Figure", "Error_Number", "Error_Letter", "Error_Figure",
                 "AverageQus_Par1", "AverageQus_Par2", "AverageQus_Par3"),
        missing_code=None, preprocessing=("rescale",), n_rows=202, file_shape=(202, 38),
        url=_SCM_IDENTIFY + "Final_Multitasking_Data.csv", r_export=None,
        description="Himi et al. (2019) multitasking scenario scores (the 9 variables LGES uses)",
        citation="Himi, Buehner, Schwaighofer, Klapetek & Hilbert (2019), Cognition 189:275-298; file from GitHub "
                 "dongxinshuai/scm-identify commit 6a6366b",
        licence="repository Apache-2.0; original data licence (OSF tn6hp) not confirmed",
        model_files=(("himi2019", "multitasking/himi2019.lav"),
                     ("himi2019_second_order", "multitasking/himi2019_second_order.lav"))),
    "bfi": Dataset(
        name="bfi", folder="bfi", filename="bfi.csv",
        sha256="d7f44209d9301111037853426c7b2a6ef60e470a4b1031003408e53cbb148c0e",
        delimiter=",", columns=_items("ACENO", range(1, 6)),
        missing_code=None, preprocessing=(), n_rows=2436, file_shape=(2800, 28),
        url=None, r_export=("psych", "bfi"),
        description="SAPA 25 IPIP personality items (R psych::bfi, 1-6 scale)",
        citation="Revelle, Wilt & Rosenthal (2010), SAPA project; R package psych 2.2.9",
        licence="psych is GPL (>= 2); no separate data licence stated",
        model_files=(("five_factor", "bfi/five_factor.lav"),)),
    "holzinger1939": Dataset(
        name="holzinger1939", folder="holzinger1939", filename="HolzingerSwineford1939.csv",
        sha256="47e24df6345dc949234b6ac87c950f02eafa24b0a6155211413546f6ae753ec0",
        delimiter=",", columns=_items("x", range(1, 10)),
        missing_code=None, preprocessing=(), n_rows=301, file_shape=(301, 15),
        url=None, r_export=("lavaan", "HolzingerSwineford1939"),
        description="Holzinger & Swineford (1939) mental-ability test scores, 9 tests (x1-x9)",
        citation="Holzinger & Swineford (1939); R package lavaan 0.6-14",
        licence="lavaan is GPL (>= 2)",
        model_files=(("three_factor", "holzinger1939/three_factor.lav"),)),
    "political_democracy": Dataset(
        name="political_democracy", folder="political_democracy", filename="PoliticalDemocracy.csv",
        sha256="f42fd73993c2f3edff972d95953e72f1fb462bdaf939c1ba4e35c0c9aae52559",
        delimiter=",", columns=("y1", "y2", "y3", "y4", "y5", "y6", "y7", "y8", "x1", "x2", "x3"),
        missing_code=None, preprocessing=(), n_rows=75, file_shape=(75, 11),
        url=None, r_export=("lavaan", "PoliticalDemocracy"),
        description="Bollen's industrialization and political democracy indicators, 75 countries",
        citation="Bollen (1989), Structural Equations with Latent Variables; R package lavaan 0.6-14",
        licence="lavaan is GPL (>= 2)",
        model_files=(("bollen", "political_democracy/bollen.lav"),)),
}


# ---------------------------------------------------------------- registry API
def list_datasets() -> list[str]:
    """Names of the registered data sets, in registry order."""
    return list(DATASETS)


def dataset_info(name: str) -> Dataset:
    """The registry entry (card facts, literature models) of data set ``name``."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"Unknown data set {name!r}; known data sets: {', '.join(DATASETS)}.") from None


def cache_dir() -> Path:
    """The per-user cache folder for downloaded data sets.

    ``$XDG_CACHE_HOME/latentsem`` (default ``~/.cache/latentsem``) on Linux and
    other Unix systems, ``~/Library/Caches/latentsem`` on macOS and
    ``%LOCALAPPDATA%\\latentsem\\Cache`` on Windows.
    """
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "latentsem" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "latentsem"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "latentsem"


def search_roots() -> list[Path]:
    """Folders searched for ``<folder>/<filename>``, in order (see the module docstring)."""
    roots = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots.append(cache_dir())
    roots.append(Path.cwd().parent / "shared" / "datasets")
    roots.append(REPO_ROOT.parent / "shared" / "datasets")
    unique = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def find_dataset_file(dataset: Dataset) -> Path | None:
    """The first existing ``<root>/<folder>/<filename>`` over :func:`search_roots`, unverified."""
    for root in search_roots():
        candidate = root / dataset.folder / dataset.filename
        if candidate.is_file():
            return candidate
    return None


def file_sha256(path) -> str:
    """Hex sha256 of a file (cached by path, size and modification time)."""
    stat = Path(path).stat()
    return _sha256_cached(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(dataset: Dataset, path) -> None:
    """Raise :class:`DataError` unless ``path`` has the registered sha256."""
    got = file_sha256(path)
    if got != dataset.sha256:
        raise DataError(f"{path} does not match data set {dataset.name!r}: sha256 expected {dataset.sha256} but got {got}; "
                        f"the file is changed or corrupted, so replace it with the original "
                        f"(`latentsem datasets fetch {dataset.name}`) or remove it.")


def dataset_path(name: str) -> Path:
    """Resolved, checksum-verified path of data set ``name``'s file.

    Raises
    ------
    DataError
        If the name is unknown, the file is in none of the search roots, or
        the file found has the wrong sha256.
    """
    dataset = dataset_info(name)
    path = find_dataset_file(dataset)
    if path is None:
        roots = ", ".join(str(r) for r in search_roots())
        raise DataError(f"Data set {name!r} ({dataset.relative_path}) was not found under {roots}; "
                        f"run `latentsem datasets fetch {name}`, or copy the file to {cache_dir() / dataset.relative_path}, "
                        f"or set {ENV_VAR} to a folder holding {dataset.relative_path}.")
    verify_checksum(dataset, path)
    return path


def load_dataset(name: str, columns=None, missing_code=None) -> ItemData:
    """Load a registered data set with its card's columns, missing code and preprocessing.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.
    columns : sequence of str, optional
        Override the card's item columns.
    missing_code : float, optional
        Override the card's missing-value code.

    Returns
    -------
    ItemData
        Complete rows (listwise deletion); for ``"rescale"`` data sets each
        column divided by its standard deviation.
    """
    dataset = dataset_info(name)
    path = dataset_path(name)
    data = read_items(path,
                      columns=list(dataset.columns) if columns is None else columns,
                      missing_code=dataset.missing_code if missing_code is None else missing_code,
                      delimiter=dataset.delimiter)
    for step in dataset.preprocessing:
        data = _PREPROCESSORS[step](data)
    return replace(data, source=f"{name} ({path})")


def _rescale(data: ItemData) -> ItemData:
    # Fit indices are invariant to rescaling items; dividing by the SD keeps
    # optimisers away from variances that differ by a factor of 10^5.
    frame = data.frame / data.frame.std(ddof=0)
    return replace(data, frame=frame)


_PREPROCESSORS = {"rescale": _rescale}


# ------------------------------------------------------------------------ fetch
def _urlopen(url, timeout):
    """Open ``url`` (a seam for tests; the standard library's opener)."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - fixed public addresses or the user's own URL


def fetch_dataset(name: str, *, url: str | None = None, force: bool = False) -> Path:
    """Put data set ``name``'s file into the user cache and return its path.

    Downloads from the card's public address (or ``url``), or, for data sets
    exported from an R package, runs ``Rscript`` to export them. The sha256
    is checked before the file is moved into place, so a failed or altered
    download never replaces anything.

    Parameters
    ----------
    name : str
        A registered data-set name.
    url : str, optional
        Download from here instead (a mirror, or a ``file://`` address).
    force : bool
        Fetch again even when a verified copy is already in the cache.

    Raises
    ------
    DataError
        When offline or the source is unreachable (with what to do instead),
        or when the downloaded file has the wrong sha256.
    """
    dataset = dataset_info(name)
    target = cache_dir() / dataset.relative_path
    if target.is_file() and not force:
        if file_sha256(target) == dataset.sha256:
            logger.info("%s is already in the cache at %s.", name, target)
            return target
        logger.info("Cached %s has the wrong sha256; fetching it again.", target)
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        _fetch_into(dataset, url or dataset.url, target)
    except DataError:
        if created and not any(target.parent.iterdir()):
            target.parent.rmdir()  # leave no empty folder behind a failed fetch
        raise
    logger.info("Fetched %s into %s.", name, target)
    return target


def _fetch_into(dataset: Dataset, source: str | None, target: Path) -> None:
    """Download or export into a temporary file beside ``target``; move it there only if its sha256 matches."""
    name = dataset.name
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        partial = Path(tmp) / dataset.filename
        if source:
            _download(dataset, source, partial, target)
        elif dataset.r_export:
            _export_from_r(dataset, partial, target)
        else:
            raise DataError(f"Data set {name!r} has no public address to fetch from; copy {dataset.filename} to {target} "
                            f"or set {ENV_VAR} to a folder holding {dataset.relative_path}.")
        got = file_sha256(partial)
        if got != dataset.sha256:
            raise DataError(f"The fetched {dataset.filename} for {name!r} has sha256 {got} but {dataset.sha256} was expected; "
                            f"it was discarded (the source may have changed), so copy the original file to {target} instead.")
        os.replace(partial, target)


def _download(dataset: Dataset, url: str, partial: Path, target: Path) -> None:
    try:
        with _urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"Could not download {dataset.name!r} from {url} ({reason}); if this machine is offline, "
                        f"copy {dataset.filename} from another machine to {target} or set {ENV_VAR} to a folder "
                        f"holding {dataset.relative_path}.") from None


def _export_from_r(dataset: Dataset, partial: Path, target: Path) -> None:
    package, obj = dataset.r_export
    instead = (f"copy {dataset.filename} to {target} or set {ENV_VAR} to a folder holding {dataset.relative_path}")
    rscript = shutil.which("Rscript")
    if rscript is None:
        raise DataError(f"Data set {dataset.name!r} is exported from the R package {package}, but Rscript is not installed; "
                        f"install R and {package}, or {instead}.")
    # The exact call that produced the registered file (see the card).
    code = ("a <- commandArgs(trailingOnly=TRUE); data(list=a[2], package=a[1]); "
            "write.csv(get(a[2]), a[3], row.names=FALSE, na='')")
    try:
        done = subprocess.run([rscript, "-e", code, package, obj, str(partial)], capture_output=True, text=True,
                              timeout=_RSCRIPT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DataError(f"Running Rscript to export {dataset.name!r} failed ({exc}); {instead}.") from None
    if done.returncode != 0 or not partial.is_file():
        reason = " ".join(done.stderr.split())[:200] or f"exit status {done.returncode}"
        raise DataError(f"Rscript could not export {package}::{obj} ({reason}); install the R package {package}, or {instead}.")
