"""``latentsem report``: fit several models to the same items and write a comparison report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..exceptions import LatentsemError
from ._common import items_options, load_items_from_cli

_INDEX_NAMES = ("npar", "chisq", "df", "pvalue", "rmsea", "rmsea_ci_lower", "rmsea_ci_upper",
                "cfi", "tli", "srmr", "aic", "bic")


def parse_model_option(value):
    """``NAME=FILE`` (or just ``FILE``, named by its stem) -> (name, Path); the file must exist."""
    name, sep, path = value.partition("=")
    if not sep:
        name, path = Path(value).stem, value
    name, path = name.strip(), Path(path.strip())
    if not name or not str(path):
        raise LatentsemError(f"--model {value!r} is not NAME=FILE; e.g. --model three_factor=models/three_factor.lav.")
    if not path.is_file():
        raise LatentsemError(f"Model file {str(path)!r} (--model {value}) does not exist; check the path.")
    return name, path


def parse_reported_option(value):
    """``NAME=rmsea:0.054,cfi:0.874,tli:0.855`` -> an extra row of reported (not fitted) values."""
    name, sep, body = value.rpartition("=")
    if not sep or not name.strip() or not body.strip():
        raise LatentsemError(f"--reported {value!r} is not NAME=INDEX:VALUE,...; "
                             "e.g. --reported 'LGES (paper)=rmsea:0.054,cfi:0.874,tli:0.855'.")
    row = {"name": name.strip()}
    for part in body.split(","):
        key, colon, number = part.partition(":")
        key = key.strip().lower()
        if not colon or key not in _INDEX_NAMES:
            raise LatentsemError(f"--reported {value!r}: {part.strip()!r} is not INDEX:VALUE with INDEX one of "
                                 f"{list(_INDEX_NAMES)}.")
        try:
            row[key] = float(number)
        except ValueError:
            raise LatentsemError(f"--reported {value!r}: {number.strip()!r} is not a number.") from None
    return row


def read_labels(path):
    """Item -> construct labels from a JSON object file."""
    path = Path(path)
    if not path.is_file():
        raise LatentsemError(f"Labels file {str(path)!r} does not exist; check the path.")
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LatentsemError(f"Labels file {path} is not valid JSON ({exc.msg} at line {exc.lineno}); "
                             'write an object like {"E1": "Extraversion", "N1": "Neuroticism"}.') from None
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise LatentsemError(f'Labels file {path} must hold one JSON object of item -> construct name, '
                             'e.g. {"E1": "Extraversion"}.')
    return labels


@click.command(name="report")
@items_options
@click.option("--model", "models", multiple=True, metavar="NAME=FILE",
              help="A model to fit: lavaan syntax (.lav or any text file) or a structure (.json). Repeatable.")
@click.option("--discover", is_flag=True, help="Also learn a structure with LGES (criterion auto, as discover) and add it as 'LGES (discovered)'.")
@click.option("--seed", type=int, default=0, show_default=True, help="random_state of LGES (with --discover).")
@click.option("--latent-covariances", type=click.Choice(["dag", "free"]), default="dag", show_default=True,
              help="dag: latents without an edge are independent (the paper's Table 3); free: lavaan's sem() defaults.")
@click.option("--bounds/--no-bounds", default=True, show_default=True,
              help="Bound variances at >= 0 (the paper's Table 3, lavaan bounds='pos.var'); --no-bounds fits "
                   "unbounded as lavaan's default.")
@click.option("--title", default=None, help="Title of the report.")
@click.option("--reported", "reported", multiple=True, metavar="NAME=INDEX:VALUE,...",
              help="A reference row of published values, not fitted, e.g. "
                   "'LGES (paper)=rmsea:0.054,cfi:0.874,tli:0.855'. Repeatable.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON object item -> construct; adds a purity section.")
@click.option("--labels-from-prefix", is_flag=True,
              help="Take each item's construct from its leading letters (E1 -> E); adds a purity section.")
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Report directory (report.html, report.md, fit.json, <model>.svg, model.json).")
@click.option("--force", is_flag=True, help="Replace the report's files in an existing directory.")
def command(items, dataset, columns, missing_code, models, discover, seed, latent_covariances, bounds, title, reported,
            labels_file, labels_from_prefix, out_dir, force):
    """Fit models to ITEMS and write a comparison report (HTML, Markdown, SVG path diagrams, JSON).

    Example:

    \b
      latentsem report --dataset holzinger1939 --discover \\
        --model three_factor=datasets/holzinger1939/three_factor.lav -o reports/holzinger/
    """
    if not models and not discover:
        raise LatentsemError("Nothing to report on; give at least one --model NAME=FILE or --discover.")
    if labels_file is not None and labels_from_prefix:
        raise LatentsemError("Give either --labels FILE or --labels-from-prefix, not both.")
    model_files = {}
    for value in models:
        name, path = parse_model_option(value)
        if name in model_files:
            raise LatentsemError(f"Two --model options are named {name!r}; give each model its own NAME.")
        model_files[name] = path
    extra_rows = [parse_reported_option(value) for value in reported]
    labels = read_labels(labels_file) if labels_file is not None else None

    from ..report.build import build_report, check_report_dir, labels_from_prefix as prefix_labels

    check_report_dir(out_dir, force)  # before the slow part: never fit for a report that cannot be written
    data = load_items_from_cli(items, dataset, columns, missing_code)
    labels_source = f"labels file {labels_file}" if labels_file is not None else None
    if labels_from_prefix:
        labels, labels_source = prefix_labels(data.columns), "leading letters of the item names"

    discovered = None
    if discover:
        from ..lges import LGES

        click.echo(f"Discovering a structure with LGES on {data.n} rows x {len(data.columns)} items ...", err=True)
        discovered = LGES(criterion="auto", random_state=seed).fit(data)  # as `discover` does

    result = build_report(data, model_files, discovered=discovered, out_dir=out_dir,
                          latent_covariances=latent_covariances, force=force, title=title,
                          extra_rows=extra_rows, labels=labels, labels_source=labels_source, bounds=bounds)
    for name, fit in result.fits.items():
        for message in fit.warnings:
            click.echo(f"Warning: {name}: {message}", err=True)
    click.echo(result.summary())
