"""``latentsem fit``: fit one model to item data and print lavaan's fit indices."""

from __future__ import annotations

import click

from ._common import items_options, load_items_from_cli

LATENT_COVARIANCES_HELP = ("dag: latents without an edge are independent (lavaan orthogonal=TRUE); free: lavaan sem() "
                           "defaults (exogenous latents covary). Default: dag for a .json structure, free for lavaan syntax.")


def resolve_model_argument(items, dataset, model):
    """With ``--dataset`` the single positional argument is MODEL, not ITEMS (click fills ITEMS first)."""
    from ..exceptions import LatentsemError

    if model is None and dataset is not None and items is not None:
        return None, items
    if model is None:
        raise LatentsemError("Give the MODEL file (.lav/.txt lavaan syntax or a .json structure) after ITEMS.")
    return items, model


def quiet_fit(function, *args, **kwargs):
    """Run a fit with Python warnings silenced: the result lists them and the command prints them once."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@click.command(name="fit")
@items_options
@click.argument("model", required=False, type=click.Path(dir_okay=False))
@click.option("--latent-covariances", type=click.Choice(["dag", "free"]), default=None, help=LATENT_COVARIANCES_HELP)
@click.option("--bounds/--no-bounds", default=True, show_default=True,
              help="Bound variances at >= 0 (semopy's default, lavaan bounds='pos.var'); --no-bounds is lavaan's default.")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON instead of a table.")
def command(items, dataset, columns, missing_code, model, latent_covariances, bounds, as_json):
    """Fit MODEL (lavaan syntax .lav/.txt, or a .json structure) to ITEMS by ML; print lavaan's fit indices.

    With --dataset NAME, give only MODEL.
    """
    from ..fit import fit_model
    from ..syntax import read_model

    items, model = resolve_model_argument(items, dataset, model)
    spec = read_model(model)
    data = load_items_from_cli(items, dataset, columns, missing_code)
    result = quiet_fit(fit_model, spec, data, latent_covariances=latent_covariances, bounds=bounds)
    click.echo(result.to_json() if as_json else result.summary(), nl=not as_json)
    if as_json:  # the table shows the warnings already
        for message in result.warnings:
            click.echo(f"Warning: {message}", err=True)
