"""``latentsem export``: write a model as lavaan or semopy syntax, Graphviz DOT or structure JSON."""

from __future__ import annotations

import click

from ._common import refuse_overwrite


@click.command(name="export")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["lavaan", "semopy", "dot", "json"]), default="lavaan",
              show_default=True, help="Output format.")
@click.option("--latent-covariances", type=click.Choice(["dag", "free"]), default="dag", show_default=True,
              help="dag: write A ~~ 0*B for latents without an edge; free: leave lavaan's defaults.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write to FILE instead of stdout.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
def command(model, fmt, latent_covariances, output, force):
    """Export MODEL (a .json structure, or lavaan syntax) to another format."""
    from pathlib import Path

    from ..model import Structure
    from ..syntax import parse_lavaan, read_model, table_to_structure, to_dot, to_lavaan, to_semopy

    if output is not None:
        refuse_overwrite(output, force)
    spec = read_model(model)
    if isinstance(spec, str):
        spec = parse_lavaan(spec)
        if fmt in ("dot", "json"):
            spec = table_to_structure(spec)
    if fmt == "lavaan":
        text = to_lavaan(spec, latent_covariances)
    elif fmt == "semopy":
        text = to_semopy(spec, latent_covariances)
    elif fmt == "dot":
        text = to_dot(spec)
    else:
        text = spec.to_json() if isinstance(spec, Structure) else table_to_structure(spec).to_json()
    if output is None:
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text)
        click.echo(f"Wrote {output}", err=True)
