"""``latentsem notears``: a DAG among the observed items by linear NOTEARS (Zheng et al. 2018)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..exceptions import LatentsemError
from ._common import items_options, load_items_from_cli, refuse_overwrite

_FIT_KEYS = ("chisq", "df", "pvalue", "cfi", "tli", "rmsea", "srmr")


def _check_paths(items, output, diagram, force):
    """Never overwrite the input or an existing file (without --force), and never write two outputs to one file."""
    targets = [p for p in (output, diagram) if p is not None]
    if diagram is not None and Path(output).resolve() == Path(diagram).resolve():
        raise LatentsemError(f"-o and --diagram both name {output}; give two different files.")
    for target in targets:
        if items is not None and Path(items).resolve() == Path(target).resolve():
            raise LatentsemError(f"{target} is the ITEMS file; choose another output path.")
        refuse_overwrite(target, force)


def _read_truth(path, names):
    """The true weight matrix from a graph JSON (``{"nodes", "edges"}``) whose nodes are the item columns."""
    from ..notears import graph_dict_to_weights

    try:
        graph = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise LatentsemError(f"Cannot read --truth {path}: {exc.strerror or exc}.") from None
    except json.JSONDecodeError as exc:
        raise LatentsemError(f"--truth {path} is not JSON ({exc.msg} at line {exc.lineno}); give a graph file "
                             'like the one -o writes: {"nodes": [...], "edges": [...]}.') from None
    if isinstance(graph, dict) and "nodes" in graph:
        nodes = [str(n) for n in graph["nodes"]]
        extra = [n for n in nodes if n not in names]
        missing = [n for n in names if n not in nodes]
        if extra or missing:
            raise LatentsemError(f"--truth {path} does not have the same variables as the items: not among the items "
                                 f"{extra}, missing from the truth {missing}; use --columns to match them.")
    return graph_dict_to_weights(graph, names)


def _write_graph(model, output, fmt, parameters):
    if fmt == "csv":
        import pandas as pd

        pd.DataFrame(model.W_, index=model.columns_, columns=model.columns_).to_csv(output, float_format="%.10g")
    else:
        graph = model.to_graph_dict()
        graph["method"] = "NOTEARS (linear, least squares)"
        graph["parameters"] = parameters
        graph["h"] = model.h_
        graph["n_iter"] = model.n_iter_
        Path(output).write_text(json.dumps(graph, indent=2) + "\n")


def _print_fit_indices(model, data):
    """The DAG as a lavaan path model: its syntax and lavaan's fit indices for it (``sem()`` defaults).

    A recursive path model among observed items: fit_model solves it in
    closed form (latentsem.pathfit), without semopy.
    """
    syntax = model.to_lavaan()
    if not syntax:
        click.echo("Fit indices skipped: the graph has no edges.")
        return
    import warnings

    from ..fit import fit_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fit_model(syntax, data)
    ix = result.indices
    values = "  ".join(f"{key} {ix[key]:.0f}" if key == "df" else f"{key} {ix[key]:.3f}" for key in _FIT_KEYS)
    click.echo("lavaan syntax of the DAG as a path model (lavaan: sem(model, data)):")
    click.echo("".join(f"  {line}\n" for line in syntax.splitlines()), nl=False)
    click.echo(f"lavaan fit of the DAG as a path model (N = {ix['n']}): {values}")
    for message in result.warnings:
        click.echo(f"Warning: {message}", err=True)


@click.command(name="notears")
@items_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Graph file to write: JSON nodes and weighted edges, or the weight matrix as CSV.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default="json", show_default=True,
              help="json: {nodes, edges: [{source, target, weight}]}; csv: the weight matrix, row -> column.")
@click.option("--lambda1", type=float, default=0.1, show_default=True, help="L1 penalty (higher: sparser graph).")
@click.option("--w-threshold", type=float, default=0.3, show_default=True,
              help="Drop edges with |weight| below this.")
@click.option("--max-iter", type=int, default=100, show_default=True, help="Maximum dual ascent iterations.")
@click.option("--truth", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="True graph JSON (same format as -o writes): print FDR, TPR, FPR, SHD, NNZ.")
@click.option("--diagram", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Draw the graph (with --truth: true vs estimated, errors coloured) to a .svg or .png file.")
@click.option("--fit/--no-fit", "fit_indices", default=True, show_default=True,
              help="Print the DAG as lavaan path-model syntax and its lavaan fit indices (ML, closed form).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def command(items, dataset, columns, missing_code, output, fmt, lambda1, w_threshold, max_iter, truth, diagram,
            fit_indices, force):
    """Learn a weighted DAG among the observed ITEMS with linear NOTEARS and print its edges.

    Least squares on centred data with an L1 penalty and the acyclicity
    constraint tr(exp(W o W)) = d, solved by an augmented Lagrangian; edges
    with |weight| < --w-threshold are dropped. Items are used as given
    (NOTEARS is not scale invariant: standardize first if their scales differ
    for no substantive reason).
    """
    import time
    import warnings

    if diagram is not None and diagram.suffix.lower() not in (".svg", ".png"):
        raise LatentsemError(f"--diagram {diagram} must end in .svg or .png.")
    _check_paths(items, output, diagram, force)
    data = load_items_from_cli(items, dataset, columns, missing_code)
    W_true = _read_truth(truth, data.columns) if truth is not None else None

    from ..notears import NOTEARS

    model = NOTEARS(lambda1, w_threshold=w_threshold, max_iter=max_iter)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(data.frame)
    seconds = time.perf_counter() - start
    _write_graph(model, output, fmt, {"lambda1": lambda1, "w_threshold": w_threshold, "max_iter": max_iter})

    edges = model.edges()
    click.echo(f"NOTEARS: {len(edges)} edges among {len(model.columns_)} items (N = {data.n}"
               f"{f', {data.n_dropped} incomplete rows dropped' if data.n_dropped else ''}); h = {model.h_:.1e}, "
               f"{model.n_iter_} iterations, {seconds:.2f} s. Wrote {output}.")
    width = max((len(s) for s, _, _ in edges), default=0)
    for source, target, weight in edges:
        click.echo(f"  {source:>{width}} -> {target}  {weight:+.3f}")
    for warning in caught:
        click.echo(f"Warning: {warning.message}", err=True)

    if W_true is not None:
        from ..metrics.dag import count_accuracy

        click.echo(f"Against {truth}: {count_accuracy(W_true, model.adjacency_).summary()}")
    if diagram is not None:
        from ..report.dag_diagram import comparison_source, dag_source, render

        if W_true is not None:
            source = comparison_source(W_true, model.W_, model.columns_)
        else:
            source = dag_source(model.W_, model.columns_)
        render(source, diagram)
        click.echo(f"Diagram: {diagram}")
    if fit_indices:
        _print_fit_indices(model, data)
