"""Graphviz drawings of a weighted DAG among observed variables, and of an estimate against the truth.

:func:`dag_source` draws one DAG (arrows labelled with their weights).
:func:`comparison_source` draws the true graph and the estimated graph side by
side, with the estimate's edges coloured by how they compare to the truth (as
in the NOTEARS walkthrough's edge-recovery plot):

* blue: true positive (estimated in the true direction);
* orange: reversed (the truth has the opposite direction);
* green: false positive (absent from the true skeleton);
* red, dashed: false negative (a true edge the estimate misses), drawn in the
  estimated panel so that every error is visible in one place.

:func:`render` writes SVG or PNG by the file suffix through ``dot``. Names go
through :func:`graphviz.escape`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..exceptions import LatentsemError
from ..metrics.dag import compare_edges
from .diagram import run_dot

COLOURS = {"true_positive": "#1f5fbf", "reversed": "#e08a00", "false_positive": "#2e9e44",
           "false_negative": "#d62728", "truth": "#444444"}
FORMATS = ("svg", "png")
_NODE = {"shape": "box", "style": "rounded,filled", "fillcolor": "#f7f7f7", "color": "#555555",
         "fontname": "Helvetica", "fontsize": "10", "height": "0.3"}
_EDGE = {"arrowsize": "0.6", "fontname": "Helvetica", "fontsize": "8"}


def _weight_label(W, i, j):
    """Two decimals for weighted graphs; nothing for a binary one (all weights 1)."""
    value = float(W[i, j])
    return "" if np.all(np.isin(W, (0.0, 1.0))) else f"{value:.2f}"


def _add_panel(graph, W, names, prefix, edge_styles, title):
    """One cluster: every node, then the edges ``[(i, j, attrs), ...]``."""
    import graphviz

    with graph.subgraph(name=f"cluster_{prefix}") as panel:
        panel.attr(label=graphviz.escape(title), fontname="Helvetica", fontsize="12", color="#bbbbbb")
        for k, name in enumerate(names):
            panel.node(f"{prefix}{k}", label=graphviz.escape(str(name)), **_NODE)
        for i, j, attrs in edge_styles:
            panel.edge(f"{prefix}{i}", f"{prefix}{j}", **attrs)


def _check(W, names, what):
    W = np.asarray(W, dtype=float)
    if W.ndim != 2 or W.shape != (len(names), len(names)):
        raise LatentsemError(f"{what} must be a {len(names)} x {len(names)} matrix for {len(names)} names; "
                             f"got shape {W.shape}.")
    return W


def dag_source(W, names, *, title="Estimated DAG"):
    """The :class:`graphviz.Digraph` of the weighted DAG ``W`` (``W[i, j] != 0``: names[i] -> names[j])."""
    import graphviz

    W = _check(W, names, "W")
    graph = graphviz.Digraph(name="dag", graph_attr={"rankdir": "TB", "fontname": "Helvetica"})
    graph.attr("edge", color=COLOURS["truth"], **_EDGE)
    edges = [(i, j, {"label": _weight_label(W, i, j)}) for i, j in zip(*np.nonzero(W))]
    _add_panel(graph, W, names, "n", edges, title)
    return graph


def comparison_source(W_true, W_est, names, *, title=None):
    """The true and estimated DAGs side by side, estimated edges coloured TP / reversed / FP / FN.

    Parameters
    ----------
    W_true, W_est : array, shape (d, d)
        True and estimated (weighted or binary) DAGs, ``[i, j] != 0`` for i -> j.
    names : list of str
    title : str, optional
        Label under the drawing; defaults to the colour legend.

    Returns
    -------
    graphviz.Digraph
    """
    import graphviz

    W_true = _check(W_true, names, "W_true")
    W_est = _check(W_est, names, "W_est")
    kinds = compare_edges(W_true, W_est)
    graph = graphviz.Digraph(name="comparison", graph_attr={
        "rankdir": "TB", "fontname": "Helvetica", "fontsize": "10", "labelloc": "b",
        "label": graphviz.escape(title or "blue: true positive   orange: reversed   green: false positive   "
                                          "red dashed: missed (false negative)")})
    graph.attr("edge", **_EDGE)
    truth_edges = [(i, j, {"color": COLOURS["truth"], "label": _weight_label(W_true, i, j)})
                   for i, j in zip(*np.nonzero(W_true))]
    _add_panel(graph, W_true, names, "t", truth_edges, "True graph")
    estimate_edges = []
    for kind in ("true_positive", "reversed", "false_positive"):
        colour = COLOURS[kind]
        estimate_edges += [(i, j, {"color": colour, "fontcolor": colour, "penwidth": "1.4",
                                   "label": _weight_label(W_est, i, j)}) for i, j in getattr(kinds, kind)]
    estimate_edges += [(i, j, {"color": COLOURS["false_negative"], "style": "dashed"})
                       for i, j in kinds.false_negative]
    _add_panel(graph, W_est, names, "e", estimate_edges,
               f"Estimated graph: {len(kinds.true_positive)} correct, {len(kinds.reversed)} reversed, "
               f"{len(kinds.false_positive)} extra, {len(kinds.false_negative)} missed")
    return graph


def render(source, path):
    """Write the drawing ``source`` to ``path`` as SVG or PNG (chosen by the suffix); returns the path.

    Raises
    ------
    LatentsemError
        For another suffix, or when Graphviz's ``dot`` is missing or fails.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise LatentsemError(f"Cannot draw to {path.name}: the diagram file must end in .svg or .png.")
    data = run_dot(source, fmt)
    path.write_bytes(data)
    return path
