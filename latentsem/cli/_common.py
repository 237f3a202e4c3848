"""Options and helpers shared by the commands that read item data or write files.

``@items_options`` gives a command the same way to name its data everywhere:
an ITEMS file, or ``--dataset NAME`` from the registry, narrowed with
``--columns`` and ``--missing-code``. pandas is imported only when data are
loaded, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..exceptions import LatentsemError


def items_options(func):
    """Add ``ITEMS`` (optional path), ``--dataset``, ``--columns`` and ``--missing-code`` to a click command.

    The command receives them as ``items``, ``dataset``, ``columns`` and
    ``missing_code``; pass those to :func:`load_items_from_cli`.
    """
    func = click.option("--missing-code", "missing_code", type=float, default=None, metavar="VALUE",
                        help="Value meaning 'missing' in the item columns (e.g. 0 in BIG5); empty fields are always missing. "
                             "Overrides the data set's code.")(func)
    func = click.option("--columns", "columns", default=None, metavar="A,B,C",
                        help="Comma-separated item columns, in this order (default: every numeric column, "
                             "or the data set's items).")(func)
    func = click.option("--dataset", "dataset", default=None, metavar="NAME",
                        help="Use a registered data set instead of an ITEMS file (see `latentsem datasets list`).")(func)
    func = click.argument("items", required=False, type=click.Path(dir_okay=True, path_type=Path))(func)
    return func


def parse_columns(columns):
    """``"a, b,c"`` -> ``["a", "b", "c"]``; ``None`` stays ``None``."""
    if columns is None:
        return None
    names = [name.strip() for name in columns.split(",") if name.strip()]
    if not names:
        raise LatentsemError(f"--columns {columns!r} names no columns; give comma-separated item names, e.g. --columns q1,q2,q3,q4.")
    return names


def load_items_from_cli(items, dataset, columns, missing_code):
    """Load item data from an ITEMS path or a ``--dataset`` name (exactly one).

    Parameters
    ----------
    items : path or None
        A CSV/TSV file with a header row.
    dataset : str or None
        A registered data-set name.
    columns : str or None
        Comma-separated column names; overrides the data set's items.
    missing_code : float or None
        Overrides the data set's missing-value code.

    Returns
    -------
    latentsem.data.ItemData
    """
    if items is None and dataset is None:
        raise LatentsemError("Give an ITEMS file or --dataset NAME (see `latentsem datasets list`).")
    if items is not None and dataset is not None:
        raise LatentsemError(f"Give either an ITEMS file ({items}) or --dataset {dataset}, not both.")
    names = parse_columns(columns)
    if dataset is not None:
        from ..datasets import load_dataset

        return load_dataset(dataset, columns=names, missing_code=missing_code)
    from ..data import read_items

    return read_items(items, columns=names, missing_code=missing_code)


def refuse_overwrite(path, force):
    """Raise :class:`LatentsemError` if ``path`` exists and ``force`` is false (never lose user files)."""
    if not force and Path(path).exists():
        raise LatentsemError(f"{path} already exists; pass --force to overwrite it or choose another path.")
