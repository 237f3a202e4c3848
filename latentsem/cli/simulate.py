"""``latentsem simulate``: data from a random generalized N factor model, with its truth."""

from __future__ import annotations

from pathlib import Path

import click

from ..exceptions import LatentsemError
from ._common import refuse_overwrite


@click.command(name="simulate")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the graph, its weights and the data.")
@click.option("--n", "n", type=click.IntRange(min=1), default=1000, show_default=True, help="Number of rows.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV file to write (observed variables X1.. as columns).")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSON file for the true structure, with its weights and noise variances.")
@click.option("--noise", type=click.Choice(["gaussian", "uniform", "laplace"]), default="gaussian", show_default=True,
              help="Noise distribution (same variance whatever the kind).")
@click.option("--nonlinearity", type=click.Choice(["leaky_relu"]), default=None,
              help="Pass every variable through LR(x) = max(0.8 x, x) (the paper's misspecified setting).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def command(seed, n, output, truth, noise, nonlinearity, force):
    """Simulate item data from a random generalized N factor model (paper section 5.1).

    About 20 variables, about 5 of them latent; edge weights U(-5, 5) with
    |w| >= 1, noise variances U(0.1, 1). The same --seed gives the same files.
    """
    if truth is not None and Path(output).resolve() == Path(truth).resolve():
        raise LatentsemError(f"--output and --truth both name {output}; give two different files.")
    refuse_overwrite(output, force)
    if truth is not None:
        refuse_overwrite(truth, force)

    from ..simulate.gnfm import make_gnfm_dataset

    data, structure = make_gnfm_dataset(seed, n, noise=noise, nonlinearity=nonlinearity)
    data.to_csv(output, index=False)
    message = f"Wrote {len(data)} rows x {data.shape[1]} observed variables to {output}"
    if truth is not None:
        structure.to_json(truth)
        message += f"; true structure ({len(structure.latent)} latents) to {truth}"
    click.echo(message + ".")
