"""Fit-comparison reports: fit every model, draw it, and write HTML, Markdown and JSON.

:func:`build_report` is the Python API behind ``latentsem report``. It fits
each model with :func:`latentsem.fit.fit_model` (lavaan's conventions), draws
it with :func:`latentsem.report.diagram.path_diagram`, and writes into
``out_dir``:

* ``report.html``: self-contained (inline CSS and SVG), works offline;
* ``report.md``: the same tables, diagrams linked as ``<model>.svg`` beside it;
* ``<model>.svg``: one path diagram per model;
* ``fit.json``: every model's fit indices (full precision), the reported rows,
  the best model per index, the data summary and the settings;
* ``model.json``: the discovered structure, when one is given.

Everything is computed and rendered in memory before the first file is
written, so bad input never leaves a half-written report, and an existing
report directory is never touched without ``force=True`` (then only the files
listed above are replaced).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import platform
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from .. import __version__
from ..exceptions import ConvergenceWarning, LatentsemError, NumericalWarning
from ..fit import COMPARISON_COLUMNS, fit_model
from ..model import Structure
from . import diagram, render

logger = logging.getLogger(__name__)

# Index keys of the comparison table (lavaan fitMeasures names) and which way is better.
INDEX_KEYS = ("npar", "chisq", "df", "pvalue", "rmsea", "rmsea_ci_lower", "rmsea_ci_upper",
              "cfi", "tli", "srmr", "aic", "bic")
# Which way is better comes from fit.py's comparison (lowest RMSEA, SRMR, AIC, BIC; highest CFI, TLI).
LOWER_IS_BETTER = tuple(k for k, d in COMPARISON_COLUMNS.items() if d < 0)
HIGHER_IS_BETTER = tuple(k for k, d in COMPARISON_COLUMNS.items() if d > 0)
REPORT_FILES = ("report.html", "report.md", "fit.json")
DISCOVERED_FILE = "model.json"
DISCOVERED_NAME = "LGES (discovered)"
_TIE_RTOL = 1e-12

LATENT_COVARIANCE_TEXT = {
    "dag": ("dag: latent variables with no edge between them are independent (their covariance is fixed at 0; "
            "lavaan: orthogonal=TRUE, auto.cov.y=FALSE); undirected latent edges are oriented to one DAG of the "
            "equivalence class, which fits identically. This is the semantics of the LGES paper's Table 3."),
    "free": ("free: lavaan's sem()/cfa() defaults: exogenous latent variables covary freely, residuals of pure "
             "dependent variables covary; other latent pairs without an edge are independent."),
}


# ============================================================== result type
@dataclass
class ReportResult:
    """What :func:`build_report` wrote and computed.

    Attributes
    ----------
    out_dir : Path
        The report directory.
    files : list of Path
        Every file written, in writing order.
    fits : dict of str -> FitResult
        The fit of each model (discovered model included), by name.
    best : dict of str -> list of str
        For each compared index, the model(s) with the best value.
    purity : dict of str -> dict, or None
        :func:`latent_purity` of each model, when labels were given.
    discovered : Structure or None
        The discovered structure written to ``model.json``.
    """

    out_dir: Path
    files: list = field(default_factory=list)
    fits: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)
    purity: dict | None = None
    discovered: Structure | None = None

    @property
    def html_path(self) -> Path:
        return self.out_dir / "report.html"

    def summary(self) -> str:
        """One line per model (chi-square, df, RMSEA, CFI, TLI, SRMR) and the report's location."""
        lines = [f"Report written to {self.html_path} ({len(self.files)} files)."]
        for name, fit in self.fits.items():
            ix = fit.indices
            lines.append(f"  {name}: chisq({render.fmt_int(ix.get('df'))}) = {render.fmt(ix.get('chisq'))}, "
                         f"RMSEA {render.fmt(ix.get('rmsea'))}, CFI {render.fmt(ix.get('cfi'))}, "
                         f"TLI {render.fmt(ix.get('tli'))}, SRMR {render.fmt(ix.get('srmr'))}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"out_dir": str(self.out_dir), "files": [str(f) for f in self.files],
                           "best": self.best, "purity": self.purity}, indent=2, default=_json_default) + "\n"


# =================================================================== purity
def latent_purity(structure: Structure, labels: Mapping[str, str]) -> dict:
    """How pure each latent's items are with respect to known constructs.

    For Big Five data, ``labels`` maps each item to its trait; a latent whose
    items all come from one trait has purity 1.

    Parameters
    ----------
    structure : Structure
        The model; a latent's items are its observed children.
    labels : mapping of item -> construct
        Items missing from ``labels`` are ignored (listed as ``unlabelled``).

    Returns
    -------
    dict
        ``latents``: for each latent with items, ``{"n_items", "n_labelled",
        "counts" (construct -> items), "dominant" (most common construct;
        ties joined by "/"), "purity" (dominant count / labelled items, or
        None)}``; ``mean_purity``: the mean over latents with labelled items;
        ``weighted_purity``: the share of all labelled loaded items that
        belong to their latent's dominant construct (an item loading on two
        latents counts twice); ``unlabelled``: loaded items without a label.
    """
    observed = set(structure.observed)
    latents, unlabelled = {}, []
    dominant_total = labelled_total = 0
    for lname in structure.latent:
        items = [c for c in structure.children(lname) if c in observed]
        if not items:
            continue
        counts = Counter(labels[x] for x in items if x in labels)
        unlabelled += [x for x in items if x not in labels]
        n_labelled = sum(counts.values())
        if n_labelled:
            top = max(counts.values())
            dominant = "/".join(sorted(str(c) for c, k in counts.items() if k == top))
            purity = top / n_labelled
            dominant_total += top
            labelled_total += n_labelled
        else:
            dominant, purity = None, None
        latents[lname] = {"n_items": len(items), "n_labelled": n_labelled,
                          "counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))),
                          "dominant": dominant, "purity": purity}
    purities = [v["purity"] for v in latents.values() if v["purity"] is not None]
    return {"latents": latents,
            "mean_purity": sum(purities) / len(purities) if purities else None,
            "weighted_purity": dominant_total / labelled_total if labelled_total else None,
            "unlabelled": sorted(set(unlabelled))}


def labels_from_prefix(items) -> dict:
    """Item -> construct from the item name's leading letters (``E1`` -> ``E``, ``Neur_3`` -> ``Neur``)."""
    labels = {}
    for item in items:
        match = re.match(r"[A-Za-z]+", str(item))
        if match is None:
            raise LatentsemError(f"Item {item!r} has no leading letters to take a construct label from; "
                                 "give labels explicitly instead.")
        labels[str(item)] = match.group(0)
    return labels


# ============================================================ output folder
def check_report_dir(out_dir, force: bool = False) -> Path:
    """Refuse to write into an existing non-empty directory unless ``force`` (nothing is touched).

    Raises
    ------
    LatentsemError
        When ``out_dir`` is an existing file, or a non-empty directory and
        ``force`` is false.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LatentsemError(f"{out_dir} exists and is not a directory; choose a directory for the report with -o.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise LatentsemError(f"Report directory {out_dir} already exists and is not empty; pass --force to replace "
                             "the report's files in it, or choose another directory.")
    return out_dir


def model_slugs(names) -> dict:
    """A distinct, file-safe stem for each model name (``<script>`` -> ``script``)."""
    slugs, taken = {}, set()
    for k, name in enumerate(names):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._-") or f"model{k + 1}"
        slug, n = stem, 2
        while slug.lower() in taken:
            slug, n = f"{stem}_{n}", n + 1
        taken.add(slug.lower())
        slugs[name] = slug
    return slugs


# ============================================================= fit helpers
def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _clean_number(value):
    """A float, or None for missing / non-finite values (JSON has no NaN)."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _model_from_input(name, model):
    """A Structure or lavaan text from what the caller gave (Structure, syntax text or a file path)."""
    if isinstance(model, Structure):
        return model, "given as a Structure"
    if isinstance(model, Path):
        if not model.is_file():
            raise LatentsemError(f"Model file {str(model)!r} for model {name!r} does not exist; check the path.")
        if model.suffix.lower() == ".json":
            return Structure.from_json(model), f"structure file {model.name}"
        try:
            return model.read_text(encoding="utf-8"), f"lavaan syntax file {model.name}"
        except UnicodeDecodeError:
            raise LatentsemError(f"Model file {str(model)!r} for model {name!r} is not UTF-8 text; give lavaan "
                                 "syntax (.lav) or a structure (.json).") from None
    if isinstance(model, str):
        return model, "lavaan syntax"
    raise LatentsemError(f"Model {name!r} must be a Structure, lavaan syntax text or a file path; "
                         f"got {type(model).__name__}.")


def _discovered_structure(discovered):
    """(Structure, description) from a Structure or a fitted LGES-like estimator (``model_``, ``runtime_``)."""
    if isinstance(discovered, Structure):
        runtime = discovered.metadata.get("runtime_s")
        return discovered, "discovered by LGES" + (f" in {runtime:.1f} s" if isinstance(runtime, (int, float)) else "")
    structure = getattr(discovered, "model_", None)
    if not isinstance(structure, Structure):
        raise LatentsemError("discovered must be a Structure or a fitted LGES estimator (with a model_ attribute); "
                             f"got {type(discovered).__name__}.")
    runtime = getattr(discovered, "runtime_", None)
    return structure, "discovered by LGES" + (f" in {runtime:.1f} s" if isinstance(runtime, (int, float)) else "")


def _check_extra_rows(extra_rows, fitted_names):
    rows = []
    allowed = set(INDEX_KEYS)
    for k, row in enumerate(extra_rows or ()):
        if not isinstance(row, Mapping) or not str(row.get("name", "")).strip():
            raise LatentsemError(f"extra_rows[{k}] must be a mapping with a 'name' and reported indices, "
                                 "e.g. {'name': 'LGES (paper)', 'rmsea': 0.054, 'cfi': 0.874, 'tli': 0.855}.")
        unknown = sorted(set(row) - allowed - {"name", "note"})
        if unknown:
            raise LatentsemError(f"extra_rows[{k}] ({row['name']!r}) has unknown keys {unknown}; "
                                 f"use 'name', 'note' and indices among {list(INDEX_KEYS)}.")
        if row["name"] in fitted_names:
            raise LatentsemError(f"extra_rows[{k}] is named {row['name']!r} like a fitted model; give reported "
                                 "rows their own names.")
        rows.append({"name": str(row["name"]), "note": str(row.get("note", "") or ""),
                     "values": {key: _clean_number(row.get(key)) for key in INDEX_KEYS}})
    return rows


def best_models(rows: Mapping[str, Mapping[str, float]], keys=LOWER_IS_BETTER + HIGHER_IS_BETTER) -> dict:
    """For each index in ``keys``, the names whose value is best (ties share it).

    Lower is better for RMSEA, SRMR, AIC and BIC; higher for CFI and TLI.
    Missing values never win.
    """
    best = {}
    for key in keys:
        values = {name: v[key] for name, v in rows.items() if _clean_number(v.get(key)) is not None}
        if not values:
            continue
        target = min(values.values()) if key in LOWER_IS_BETTER else max(values.values())
        scale = max(abs(target), 1.0)
        best[key] = [name for name, v in values.items() if abs(v - target) <= _TIE_RTOL * scale]
    return best


def package_versions() -> list[dict]:
    """Versions of latentsem, Python and the libraries behind the numbers and the drawing."""
    versions = [{"name": "latentsem", "version": __version__},
                {"name": "python", "version": platform.python_version()}]
    for package in ("numpy", "scipy", "pandas", "semopy", "graphviz", "jinja2"):
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "not installed"
        versions.append({"name": package if package != "graphviz" else "graphviz (Python)", "version": version})
    versions.append({"name": "dot (Graphviz)", "version": diagram.dot_version() or "not installed"})
    return versions


# ===================================================== reading a FitResult
_COLUMN_ALIASES = {
    "est": ("est", "estimate"),
    "se": ("se", "std.err"),
    "z": ("z", "z-value"),
    "pvalue": ("pvalue", "p-value"),
    "std": ("std_all", "est_std", "std.all", "est.std"),
}


def _column(frame, name):
    for alias in _COLUMN_ALIASES[name]:
        if frame is not None and alias in frame.columns:
            return alias
    return None


def _parameter_rows(fit) -> list[dict]:
    """The fit's parameters as dicts ``lhs op rhs est se z pvalue std`` (lavaan's parameterEstimates order)."""
    est = fit.estimates
    std = getattr(fit, "standardized", None)
    std_col = _column(std, "std") if std is not None else None
    std_values = {}
    if std_col is not None:
        for rec in std.to_dict("records"):
            std_values[(rec["lhs"], rec["op"], rec["rhs"])] = _clean_number(rec[std_col])
    own_std = _column(est, "std")
    rows = []
    for rec in est.to_dict("records"):
        key = (rec["lhs"], rec["op"], rec["rhs"])
        row = {"lhs": str(rec["lhs"]), "op": str(rec["op"]), "rhs": str(rec["rhs"])}
        for name in ("est", "se", "z", "pvalue"):
            col = _column(est, name)
            row[name] = _clean_number(rec[col]) if col else None
        row["std"] = std_values.get(key, _clean_number(rec[own_std]) if own_std else None)
        row["free"] = bool(rec.get("free", row["se"] is not None))
        rows.append(row)
    return rows


def _estimate_groups(rows) -> list[dict]:
    """Parameters grouped as lavaan's summary() prints them."""
    groups = [("Loadings (=~)", lambda r: r["op"] == "=~"),
              ("Regressions (~)", lambda r: r["op"] == "~"),
              ("Covariances (~~)", lambda r: r["op"] == "~~" and r["lhs"] != r["rhs"]),
              ("Variances (~~)", lambda r: r["op"] == "~~" and r["lhs"] == r["rhs"]),
              ("Other", lambda r: r["op"] not in ("=~", "~", "~~"))]
    out = []
    for title, keep in groups:
        members = [r for r in rows if keep(r)]
        if members:
            out.append({"title": title, "rows": members})
    return out


def _diagram_values(rows):
    """Standardized coefficients keyed for :func:`diagram.path_diagram`: arrows and free covariances."""
    loadings, correlations = {}, {}
    for r in rows:
        if r["std"] is None:
            continue
        if r["op"] == "=~":
            loadings[(r["lhs"], r["rhs"])] = r["std"]
        elif r["op"] == "~":
            loadings[(r["rhs"], r["lhs"])] = r["std"]
        elif r["op"] == "~~" and r["lhs"] != r["rhs"] and r["free"]:
            correlations[(r["lhs"], r["rhs"])] = r["std"]
    return loadings, correlations


def _indices(fit) -> dict:
    return {key: _clean_number(fit.indices.get(key)) for key in INDEX_KEYS}


# ============================================================== the report
def _item_summary(data) -> list[dict]:
    frame = data.frame
    return [{"name": str(col), "mean": float(frame[col].mean()), "sd": float(frame[col].std(ddof=1)),
             "min": float(frame[col].min()), "max": float(frame[col].max())} for col in frame.columns]


def _settings(latent_covariances, bounds, discovery, labels_source):
    settings = [
        {"label": "Latent covariances", "value": LATENT_COVARIANCE_TEXT[latent_covariances]},
        {"label": "Estimator", "value": "Maximum likelihood (normal), sample covariance with divisor N, "
                                        "incomplete rows removed listwise; parameters estimated by semopy."},
        {"label": "Variances", "value": ("bounded at >= 0 (lavaan bounds=\"pos.var\"; the paper's Table-3 convention)"
                                         if bounds else "unbounded (lavaan's default); negative variances are "
                                                        "reported as Heywood cases")},
        {"label": "Fit indices", "value": "lavaan's definitions (fitMeasures): chi-square = N x F_ML, RMSEA with N "
                                          "(not N - 1) and its 90% CI, CFI clamped to [0, 1], TLI, SRMR (Bentler), "
                                          "AIC and BIC from the log-likelihood."},
        {"label": "Printed convention", "value": "lavaan's defaults: values rounded to 3 decimals, no truncation. "
                                                 "The paper's Table-3 convention (RMSEA, CFI and TLI truncated to 3 "
                                                 "decimals) is a separate column group of the comparison table."},
    ]
    if discovery:
        settings.append({"label": "Discovery", "value": discovery})
    if labels_source:
        settings.append({"label": "Construct labels", "value": labels_source})
    return settings


def _comparison_notes(reported, observed_sets, excluded):
    notes = ["Best values (marked) are compared among the fitted models: lowest RMSEA, SRMR, AIC and BIC, highest "
             "CFI and TLI. Chi-square, df and npar are not marked: a lower chi-square with fewer degrees of freedom "
             "is not a better fit."]
    if len(observed_sets) > 1:
        notes.append("The models use different item sets, so their AIC and BIC are not comparable and are not marked.")
    if excluded:
        notes.append(f"Models that did not converge are not compared: {', '.join(excluded)}.")
    if reported:
        notes.append("Rows marked 'reported' are values published elsewhere, shown as reported; they were not "
                     "fitted here and take no part in the comparison.")
    notes.append("The Table-3 columns truncate this fit's RMSEA, CFI and TLI to 3 decimals, as the LGES paper's "
                 "Table 3 prints them (that table also used dag latent covariances and variances bounded at >= 0).")
    return notes


def build_report(data, models: Mapping[str, Any], discovered=None, *, out_dir, latent_covariances="dag",
                 force=False, title=None, extra_rows=None, labels=None, labels_source=None,
                 bounds=True) -> ReportResult:
    """Fit every model to ``data``, compare them and write the report files into ``out_dir``.

    Parameters
    ----------
    data : ItemData or pandas DataFrame
        The item data (a DataFrame goes through
        :func:`latentsem.data.items_from_frame`).
    models : mapping of name -> Structure, lavaan syntax text or Path
        The models to fit; a Path is read as a structure (``.json``) or as
        lavaan syntax (anything else). May be empty when ``discovered`` is given.
    discovered : Structure or fitted LGES, optional
        A discovered structure (or the estimator whose ``model_`` it is),
        fitted as model ``"LGES (discovered)"`` and written to ``model.json``.
    out_dir : path
        The report directory (required, keyword-only), created if needed.
    latent_covariances : {"dag", "free"}
        Semantics of latent pairs without an edge (see :func:`latentsem.fit.fit_model`);
        stated in the report's settings.
    force : bool
        Replace the report's files in an existing non-empty directory (other
        files there are left alone). Without it such a directory is an error.
    title : str, optional
        The report's title.
    extra_rows : sequence of mapping, optional
        Reference rows that are not fitted, e.g. ``{"name": "LGES (paper)",
        "rmsea": 0.054, "cfi": 0.874, "tli": 0.855, "note": "Table 3"}``;
        shown as reported values and never marked best.
    labels : mapping of item -> construct, optional
        Known constructs of the items; adds a purity section
        (:func:`latent_purity`) for every model.
    labels_source : str, optional
        Where the labels came from, printed in the report.
    bounds : bool, default True
        Variances bounded at >= 0 (the paper's Table-3 convention, lavaan
        ``bounds="pos.var"``); False fits unbounded as lavaan's default.
        Passed to :func:`latentsem.fit.fit_model`.

    Returns
    -------
    ReportResult
    """
    from ..data import ItemData, items_from_frame

    if latent_covariances not in LATENT_COVARIANCE_TEXT:
        raise LatentsemError(f"The 'latent_covariances' parameter of build_report must be one of "
                             f"{list(LATENT_COVARIANCE_TEXT)}. Got {latent_covariances!r} instead.")
    out_dir = check_report_dir(out_dir, force)
    data = data if isinstance(data, ItemData) else items_from_frame(data)
    inputs, origins, discovered_structure, discovery = _collect_models(models, discovered)
    reported = _check_extra_rows(extra_rows, set(inputs))

    # Fit and draw everything first: an error in any model leaves the directory untouched.
    slugs = model_slugs(list(inputs))
    fits, views = {}, []
    for k, (name, model) in enumerate(inputs.items()):
        fits[name] = _fit_quietly(name, model, data, latent_covariances, bounds)
        views.append(_model_view(name, model, fits[name], slugs[name], origins[name], id_prefix=f"m{k + 1}"))
    best, comparison = _comparison(views, reported)
    purity = None
    if labels:
        labels = {str(k): str(v) for k, v in dict(labels).items()}
        purity = {v["name"]: latent_purity(v["drawable"], labels) for v in views
                  if isinstance(v["drawable"], Structure)}

    files = list(REPORT_FILES) + [v["svg_file"] for v in views]
    if discovered_structure is not None:
        files.append(DISCOVERED_FILE)
    context = {
        "title": title or f"Model comparison: {_short_source(data.source)}",
        "generated_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "latentsem_version": __version__,
        "latent_covariances": latent_covariances,
        "data": {"source": data.source, "n": data.n, "n_items": len(data.columns), "n_dropped": data.n_dropped,
                 "items": _item_summary(data)},
        "comparison": comparison,
        "models": views,
        "purity": _purity_views(purity) if purity else None,
        "purity_source": labels_source or "labels given by the caller",
        "settings": _settings(latent_covariances, bounds, discovery, labels_source if labels else None),
        "versions": package_versions(),
        "files": files,
    }
    contents = {
        "report.html": render.render_html(context),
        "report.md": render.render_markdown(context),
        "fit.json": _fit_json(context, fits, best, latent_covariances, bounds),
    }
    contents.update({v["svg_file"]: v["svg"] for v in views})
    if discovered_structure is not None:
        contents[DISCOVERED_FILE] = discovered_structure.to_json()
    written = _write_files(out_dir, contents)
    return ReportResult(out_dir=out_dir, files=written, fits=fits, best=best, purity=purity,
                        discovered=discovered_structure)


def _collect_models(models, discovered):
    """(inputs name -> Structure or syntax, origins name -> description, discovered Structure, its description)."""
    inputs, origins = {}, {}
    for name, model in dict(models).items():
        if not str(name).strip():
            raise LatentsemError("Every model needs a non-empty name (NAME=FILE).")
        inputs[str(name)], origins[str(name)] = _model_from_input(name, model)
    discovered_structure, discovery = None, None
    if discovered is not None:
        if DISCOVERED_NAME in inputs:
            raise LatentsemError(f"A model is already named {DISCOVERED_NAME!r}; rename it to add the discovered one.")
        discovered_structure, discovery = _discovered_structure(discovered)
        inputs[DISCOVERED_NAME], origins[DISCOVERED_NAME] = discovered_structure, discovery
    if not inputs:
        raise LatentsemError("No model to report on; give at least one model (--model NAME=FILE) or --discover.")
    return inputs, origins, discovered_structure, discovery


def _fit_quietly(name, model, data, latent_covariances, bounds):
    """fit_model, with its warnings kept on the result (and in the report) instead of repeated on stderr."""
    logger.info("Fitting model %s", name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", NumericalWarning)
        fit = fit_model(model, data, latent_covariances=latent_covariances, bounds=bounds)
    for message in fit.warnings:
        logger.info("Model %s: %s", name, message)
    return fit


def _model_view(name, model, fit, slug, origin, id_prefix):
    """Everything the templates show about one fitted model, its diagram included."""
    rows = _parameter_rows(fit)
    drawable = _drawable(model)
    loadings, correlations = _diagram_values(rows)
    svg = diagram.path_diagram(drawable, loadings=loadings, correlations=correlations, id_prefix=id_prefix)
    indices = _indices(fit)
    return {
        "name": name, "slug": slug, "svg": svg, "svg_inline": diagram.inline_svg(svg), "svg_file": f"{slug}.svg",
        "origin": origin, "converged": bool(fit.converged), "warnings": [str(w) for w in fit.warnings],
        "estimate_groups": _estimate_groups(rows), "syntax": fit.syntax, "drawable": drawable,
        "n_latent": len(drawable.latent), "n_items": len(drawable.observed), "observed": frozenset(fit.observed),
        "chisq": indices["chisq"], "df": indices["df"], "indices": indices,
        "table3": {k: _clean_number(v) for k, v in fit.table3().items()},
        "notes": _model_notes(model),
    }


def _comparison(views, reported):
    """The best model per index and the comparison table's rows (fitted, then reported) and notes.

    Models that did not converge take no part; AIC and BIC are compared only
    when every model uses the same items.
    """
    fitted = {v["name"]: v["indices"] for v in views if v["converged"]}
    excluded = [v["name"] for v in views if not v["converged"]]
    observed_sets = {v["observed"] for v in views}
    keys = LOWER_IS_BETTER + HIGHER_IS_BETTER
    if len(observed_sets) > 1:
        keys = tuple(k for k in keys if k not in ("aic", "bic"))
    best = best_models(fitted, keys)
    rows = [{"name": v["name"], "slug": v["slug"], "reported": False, "note": "", "n_warnings": len(v["warnings"]),
             "converged": v["converged"], "values": v["indices"], "table3": v["table3"],
             "best": [key for key, names in best.items() if v["name"] in names]} for v in views]
    rows += [dict(row, slug=None, reported=True, converged=None, best=[], table3=None, n_warnings=0)
             for row in reported]
    return best, {"rows": rows, "notes": _comparison_notes(reported, observed_sets, excluded)}


def _model_notes(model) -> list:
    """Notes on how a model was fitted that its estimates table alone does not show."""
    if not isinstance(model, Structure):
        return []
    from ..syntax import oriented_edges

    oriented = oriented_edges(model)
    if not oriented:
        return []
    written = ", ".join(f"{a} - {b} as {a} -> {b}" for a, b in oriented)
    return [f"Undirected latent edges were fitted as one DAG of the equivalence class ({written}); every member "
            "fits identically, so the indices do not depend on this choice, but the regression estimates do."]


def _short_source(source) -> str:
    """``"holzinger1939 (/long/path.csv)"`` -> ``"holzinger1939"``; a path -> its file name."""
    text = re.sub(r"\s*\(.*\)$", "", str(source)).strip() or str(source)
    return Path(text).name or text


def _drawable(model):
    """A Structure to draw (and compute purity on), or the parameter table of syntax a Structure cannot express."""
    if isinstance(model, Structure):
        return model
    from ..exceptions import StructureError
    from ..syntax import parse_lavaan, table_to_structure

    table = parse_lavaan(model)
    try:
        return table_to_structure(table)
    except StructureError:
        return table


def _purity_views(purity):
    views = []
    for name, result in purity.items():
        latents = [{"name": lname, "n_items": v["n_items"], "dominant": v["dominant"] or "\u2014",
                    "purity": v["purity"],
                    "composition": ", ".join(f"{c} {k}" for c, k in v["counts"].items()) or "(unlabelled)"}
                   for lname, v in result["latents"].items()]
        views.append({"model": name, "mean_purity": result["mean_purity"],
                      "weighted_purity": result["weighted_purity"], "latents": latents})
    return views


def _fit_json(context, fits, best, latent_covariances, bounds) -> str:
    models = {}
    for view in context["models"]:
        fit = fits[view["name"]]
        models[view["name"]] = {
            "indices": fit.to_dict()["indices"],
            "table3": view["table3"],
            "converged": bool(fit.converged), "warnings": view["warnings"], "diagram": view["svg_file"]}
    payload = {
        "title": context["title"], "latentsem_version": __version__, "generated_at": context["generated_at"],
        "settings": {"latent_covariances": latent_covariances, "bounds": bool(bounds),
                     "latent_covariances_meaning": LATENT_COVARIANCE_TEXT[latent_covariances],
                     "convention": "lavaan defaults (no truncation); 'table3' = truncated to 3 decimals"},
        "data": {k: v for k, v in context["data"].items() if k != "items"},
        "models": models,
        "reported": [{"name": r["name"], "note": r["note"],
                      **{k: v for k, v in r["values"].items() if v is not None}}
                     for r in context["comparison"]["rows"] if r["reported"]],
        "best": best,
        "versions": {v["name"]: v["version"] for v in context["versions"]},
    }
    return json.dumps(payload, indent=2, default=_json_default) + "\n"


def _write_files(out_dir: Path, contents: Mapping[str, str]) -> list:
    """Write the report's files (and only those); refuse before writing if one of them is a directory."""
    blocked = [name for name in contents if (out_dir / name).is_dir()]
    if blocked:
        raise LatentsemError(f"{out_dir / blocked[0]} is a directory; remove it or choose another report directory.")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in contents.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
