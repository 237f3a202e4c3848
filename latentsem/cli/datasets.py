"""``latentsem datasets list|info|path|fetch``: the registry of real data sets."""

from __future__ import annotations

import click


@click.group(name="datasets")
def command():
    """List, describe, locate and fetch the registered real data sets."""


@command.command(name="list")
def list_command():
    """Table of data sets: file shape, items analysed, N and whether the file is found."""
    from ..datasets import DATASETS, find_dataset_file

    rows = [("NAME", "FILE ROWS x COLS", "ITEMS", "N", "STATUS")]
    for name, ds in DATASETS.items():
        found = find_dataset_file(ds)
        rows.append((name, f"{ds.file_shape[0]} x {ds.file_shape[1]}", str(ds.n_items), str(ds.n_rows),
                     f"found: {found}" if found else "not found"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


@command.command(name="info")
@click.argument("name")
def info_command(name):
    """Card facts of data set NAME, its file location and literature models."""
    from ..datasets import dataset_info

    click.echo(dataset_info(name).summary())


@command.command(name="path")
@click.argument("name")
def path_command(name):
    """Print the checksum-verified path of data set NAME's file (error if not found)."""
    from ..datasets import dataset_path

    click.echo(str(dataset_path(name)))


@command.command(name="fetch")
@click.argument("name")
@click.option("--url", default=None, help="Download from this address instead of the card's (a mirror or file:// path).")
@click.option("--force", is_flag=True, help="Fetch again even if a verified copy is in the cache.")
def fetch_command(name, url, force):
    """Download data set NAME into the user cache and verify its sha256."""
    from ..datasets import fetch_dataset

    click.echo(str(fetch_dataset(name, url=url, force=force)))
