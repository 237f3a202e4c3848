"""``latentsem compare``: fit several models to the same items and tabulate their indices."""

from __future__ import annotations

import click

from ._common import items_options, load_items_from_cli
from .fit import LATENT_COVARIANCES_HELP, quiet_fit


def parse_model_options(values):
    """``["A=a.lav", "B=b.json"]`` -> ``{"A": "a.lav", "B": "b.json"}`` (names unique, files given)."""
    from ..exceptions import LatentsemError

    models = {}
    for value in values:
        name, sep, path = value.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise LatentsemError(f"--model {value!r} must be NAME=FILE, e.g. --model three_factor=hs.lav.")
        if name in models:
            raise LatentsemError(f"Model name {name!r} is given twice; give every --model a different NAME.")
        models[name] = path
    return models


@click.command(name="compare")
@items_options
@click.option("--model", "model_options", multiple=True, metavar="NAME=FILE",
              help="A model to fit (lavaan .lav/.txt or .json structure); repeat for each model.")
@click.option("--discover", is_flag=True, help="Add the model LGES discovers from the same items (can take minutes).")
@click.option("--seed", "random_state", type=int, default=0, show_default=True,
              help="random_state of LGES (with --discover), as in `discover` and `report`.")
@click.option("--latent-covariances", type=click.Choice(["dag", "free"]), default=None, help=LATENT_COVARIANCES_HELP)
@click.option("--bounds/--no-bounds", default=True, show_default=True,
              help="Bound variances at >= 0 (lavaan bounds='pos.var'); --no-bounds is lavaan's default.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def command(items, dataset, columns, missing_code, model_options, discover, random_state, latent_covariances, bounds,
            as_json):
    """Fit each --model NAME=FILE (and, with --discover, LGES's model) to ITEMS; one row per model.

    The best value of each of RMSEA, CFI, TLI, SRMR, AIC and BIC is marked with '*'.
    """
    from ..exceptions import LatentsemError
    from ..fit import compare_models
    from ..syntax import read_model

    if not model_options and not discover:
        raise LatentsemError("Nothing to compare; give --model NAME=FILE (repeatable) and/or --discover.")
    models = {name: read_model(path) for name, path in parse_model_options(model_options).items()}
    data = load_items_from_cli(items, dataset, columns, missing_code)
    if discover:
        from ..lges import LGES

        models["LGES"] = LGES(criterion="auto", random_state=random_state).fit(data).model_  # as `discover`
    comparison = quiet_fit(compare_models, models, data, latent_covariances=latent_covariances, bounds=bounds)
    click.echo(comparison.to_json() if as_json else comparison.summary(), nl=not as_json)
    for name, result in comparison.results.items():
        for message in result.warnings:
            click.echo(f"Warning ({name}): {message}", err=True)
